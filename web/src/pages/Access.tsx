import { useState, type FormEvent } from "react";
import { Api, tenantPath, type Tenant } from "../api";
import { ErrorLine, Head, useAction, useLoad } from "../ui";

interface TokenView {
  id: string;
  role: string;
  created: string;
}

const roles = ["viewer", "operator", "admin"] as const;

const roleSays: Record<(typeof roles)[number], string> = {
  viewer: "reads everything of the tenant",
  operator: "also deploys, promotes, stops and starts apps, and replays as stored",
  admin: "also environments, secrets, egress, runners, tokens, edited replays and the audit log",
};

// Access: the tenant's API tokens (admin role): made with a role and shown
// once, listed by id and role, revoked; and how long its telemetry is
// kept, which only the control plane's admin sets.
export function Access({ api, tenant, onChanged }: { api: Api; tenant: Tenant; onChanged: () => void }) {
  const path = `${tenantPath(tenant.name)}/api-tokens`;
  const tokens = useLoad(() => api.get<TokenView[]>(path), [api, path]);
  const [role, setRole] = useState<(typeof roles)[number]>("viewer");
  const [made, setMade] = useState<{ token: string; id: string; role: string }>();
  const { error, run } = useAction();
  const [days, setDays] = useState(String(tenant.retentionDays ?? ""));
  const [savedDays, setSavedDays] = useState(false);

  const create = (e: FormEvent) => {
    e.preventDefault();
    run(async () => {
      setMade(await api.call<{ token: string; id: string; role: string }>("POST", path, { role }));
      tokens.reload();
    });
  };
  const revoke = (t: TokenView) => {
    if (!window.confirm(`Revoke token ${t.id} (${t.role})? Calls with it are refused from now on.`)) return;
    run(async () => {
      await api.call("DELETE", `${path}/${encodeURIComponent(t.id)}`);
      tokens.reload();
    });
  };
  const retain = (e: FormEvent) => {
    e.preventDefault();
    setSavedDays(false);
    run(async () => {
      await api.call("PUT", `${tenantPath(tenant.name)}/retention`, { days: days === "" ? 0 : Number(days) });
      setSavedDays(true);
      onChanged();
    });
  };

  return (
    <section aria-labelledby="access-title">
      <header className="page-head">
        <h2 id="access-title">Access</h2>
      </header>
      <ErrorLine error={error} />
      <div className="panel" role="region" aria-label="API tokens">
        <h3>API tokens</h3>
        <ErrorLine error={tokens.error} />
        <form className="inline" onSubmit={create} aria-label="Make an API token">
          <label>
            Role{" "}
            <select value={role} onChange={(e) => setRole(e.target.value as (typeof roles)[number])}>
              {roles.map((r) => (
                <option key={r}>{r}</option>
              ))}
            </select>
          </label>
          <span className="hint">{roleSays[role]}</span>
          <button type="submit">Make a token</button>
        </form>
        {made && (
          <p role="status" aria-label="New token">
            Token {made.id} ({made.role}), shown this once: <code data-testid="new-token">{made.token}</code>
          </p>
        )}
        {tokens.data && tokens.data.length > 0 && (
          <table>
            <Head cols={["Token", "Role", "Made"]} hidden="Actions" />
            <tbody>
              {tokens.data.map((t) => (
                <tr key={t.id} data-token={t.id}>
                  <td className="mono">{t.id}</td>
                  <td>{t.role}</td>
                  <td>{new Date(t.created).toLocaleString()}</td>
                  <td>
                    <button className="danger" onClick={() => revoke(t)} aria-label={`Revoke token ${t.id}`}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      <div className="panel" role="region" aria-label="Telemetry retention">
        <h3>Telemetry retention</h3>
        <form className="inline" onSubmit={retain} aria-label="Set the retention">
          <label>
            Days kept <input type="number" min={1} max={3650} value={days} placeholder="the control plane's default" onChange={(e) => setDays(e.target.value)} />
          </label>
          <button type="submit">Set</button>
          <span className="hint">Exchanges and figures older go at the next retention pass. Set by the control plane's admin.</span>
          {savedDays && <span role="status">Set.</span>}
        </form>
      </div>
    </section>
  );
}

import { useState, type FormEvent } from "react";
import { Api, tenantPath, type Environment, type Tenant } from "../api";
import { Egress } from "./Egress";
import { ErrorLine, Head, useLoad } from "../ui";

// What each tier allows, as the control plane enforces it
// (controlplane/environments): said before someone meets the refusal.
const tierLimits: Record<string, string> = {
  low: "The low tier has one environment: prod.",
  mid: "The mid tier has two environments: dev and prod.",
  high: "The high tier has dev, staging, prod and environments of your own names.",
};

// Environments: the tenant's, each with its config overlay: values shown
// and edited, secrets write-only (their names shown, never their values).
export function Environments({ api, tenant }: { api: Api; tenant: Tenant }) {
  const path = `${tenantPath(tenant.name)}/environments`;
  const envs = useLoad(() => api.get<Environment[]>(path), [api, tenant.name]);
  const [name, setName] = useState("");
  const [error, setError] = useState<unknown>();

  async function create(e: FormEvent) {
    e.preventDefault();
    setError(undefined);
    try {
      await api.call("POST", path, { name: name.trim() });
      setName("");
      envs.reload();
    } catch (err) {
      setError(err);
    }
  }

  return (
    <section aria-labelledby="envs-title">
      <header className="page-head">
        <h2 id="envs-title">Environments</h2>
      </header>
      <p className="hint">{tierLimits[tenant.tier] ?? `Tier ${tenant.tier}.`}</p>
      <form className="inline" onSubmit={create}>
        <label htmlFor="env-name">New environment</label>
        <input id="env-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="dev" required />
        <button type="submit" disabled={name.trim() === ""}>
          Create
        </button>
      </form>
      <ErrorLine error={error ?? envs.error} />
      {(envs.data ?? []).map((e) => (
        <Overlay key={e.name} api={api} path={`${path}/${encodeURIComponent(e.name)}`} env={e} onSaved={envs.reload} />
      ))}
    </section>
  );
}

interface Row {
  name: string;
  value: string;
}

// Overlay edits one environment's config. Values are shown; a secret is a
// name, and a value only when it is being set: those left alone are sent
// as kept (keepSecrets), so nobody needs to know them to edit the rest.
function Overlay({ api, path, env, onSaved }: { api: Api; path: string; env: Environment; onSaved: () => void }) {
  const [values, setValues] = useState<Row[]>(() => Object.entries(env.env).map(([name, value]) => ({ name, value })));
  const [kept, setKept] = useState<string[]>(env.secrets);
  const [newSecrets, setNewSecrets] = useState<Row[]>([]);
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);

  async function save() {
    setError(undefined);
    setSaved(false);
    const body = {
      env: Object.fromEntries(values.filter((r) => r.name !== "").map((r) => [r.name, r.value])),
      secrets: Object.fromEntries(newSecrets.filter((r) => r.name !== "").map((r) => [r.name, r.value])),
      keepSecrets: kept.filter((k) => !newSecrets.some((r) => r.name === k)),
    };
    try {
      const next = await api.call<Environment>("PUT", `${path}/config`, body);
      setKept(next.secrets);
      setNewSecrets([]);
      setSaved(true);
      onSaved();
    } catch (e) {
      setError(e);
    }
  }

  const id = `env-${env.name}`;
  return (
    <div className="panel" role="region" aria-labelledby={id} data-env={env.name}>
      <h3 id={id}>{env.name}</h3>
      <table>
        <caption className="sr-only">Values of {env.name}</caption>
        <Head cols={["Variable", "Value"]} hidden="Remove" />
        <tbody>
          {values.map((r, i) => (
            <tr key={i}>
              <td>
                <input
                  aria-label={`Name of value ${i + 1} in ${env.name}`}
                  value={r.name}
                  onChange={(e) => setValues(values.map((v, j) => (j === i ? { ...v, name: e.target.value } : v)))}
                />
              </td>
              <td>
                <input
                  aria-label={`Value of ${r.name || `value ${i + 1}`} in ${env.name}`}
                  value={r.value}
                  onChange={(e) => setValues(values.map((v, j) => (j === i ? { ...v, value: e.target.value } : v)))}
                />
              </td>
              <td>
                <button className="secondary" onClick={() => setValues(values.filter((_, j) => j !== i))} aria-label={`Remove ${r.name || "value"} from ${env.name}`}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
          {kept.map((name) => (
            <tr key={`secret-${name}`} data-secret={name}>
              <td>{name}</td>
              <td>
                <span className="badge ok">secret, set</span> <span className="hint">(never shown)</span>
              </td>
              <td>
                <button className="secondary" onClick={() => setKept(kept.filter((k) => k !== name))} aria-label={`Remove secret ${name} from ${env.name}`}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
          {newSecrets.map((r, i) => (
            <tr key={`new-${i}`}>
              <td>
                <input
                  aria-label={`Name of new secret ${i + 1} in ${env.name}`}
                  value={r.name}
                  onChange={(e) => setNewSecrets(newSecrets.map((v, j) => (j === i ? { ...v, name: e.target.value } : v)))}
                />
              </td>
              <td>
                <input
                  type="password"
                  autoComplete="off"
                  aria-label={`Value of new secret ${r.name || i + 1} in ${env.name}`}
                  value={r.value}
                  onChange={(e) => setNewSecrets(newSecrets.map((v, j) => (j === i ? { ...v, value: e.target.value } : v)))}
                />
              </td>
              <td>
                <button className="secondary" onClick={() => setNewSecrets(newSecrets.filter((_, j) => j !== i))}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p>
        <button className="secondary" onClick={() => setValues([...values, { name: "", value: "" }])}>
          Add a value
        </button>{" "}
        <button className="secondary" onClick={() => setNewSecrets([...newSecrets, { name: "", value: "" }])}>
          Set a secret
        </button>{" "}
        <button onClick={save}>Save {env.name}</button> {saved && <span role="status">Saved: apps get it when they are next deployed.</span>}
      </p>
      <ErrorLine error={error} />
      <Egress api={api} path={`${path}/egress`} env={env.name} />
    </div>
  );
}

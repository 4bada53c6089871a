import { useEffect, useState } from "react";
import { Api, tenantPath, type Runner, type RunnerStatus, type RunnerToken } from "../api";
import { ago, ErrorLine, Head, until, useAction, useLoad } from "../ui";

// Runners: each of the tenant's runners, connected or not and since when,
// its version and certificate; "add a runner" makes a one-time token and
// shows the one command that installs and registers a host with it.
export function Runners({ api, tenant }: { api: Api; tenant: string }) {
  const runners = useLoad(() => api.get<Runner[]>(`${tenantPath(tenant)}/runners`), [api, tenant], 5000);
  const [token, setToken] = useState<RunnerToken>();
  const [error, setError] = useState<unknown>();
  const [openId, setOpenId] = useState<string>();
  const open = runners.data?.find((r) => r.id === openId);

  async function add() {
    setError(undefined);
    try {
      setToken(await api.call<RunnerToken>("POST", `${tenantPath(tenant)}/runner-tokens`, {}));
    } catch (e) {
      setError(e);
    }
  }
  async function revoke(r: Runner) {
    if (!window.confirm(`Revoke runner ${r.name}? Its tunnel closes and its certificate is refused from now on.`)) return;
    setError(undefined);
    try {
      await api.call("DELETE", `${tenantPath(tenant)}/runners/${encodeURIComponent(r.id)}`);
      runners.reload();
    } catch (e) {
      setError(e);
    }
  }

  const list = runners.data ?? [];
  // When the list first shows, for the time to interactive the end-to-end
  // run measures (docs/benchmarks.md).
  useEffect(() => {
    if (runners.data && performance.getEntriesByName("cameleer:runners-ready").length === 0) performance.mark("cameleer:runners-ready");
  }, [runners.data]);
  return (
    <section aria-labelledby="runners-title">
      <header className="page-head">
        <h2 id="runners-title">Runners</h2>
        <button onClick={add}>Add a runner</button>
      </header>
      <ErrorLine error={error ?? runners.error} />
      {token && <AddRunner token={token} onClose={() => setToken(undefined)} />}
      {runners.data && list.length === 0 && <p>No runner yet: add one, and run the command it shows on a Linux host.</p>}
      {list.length > 0 && (
        <table>
          <Head cols={["Name", "State", "Version", "Certificate"]} hidden="Actions" />
          <tbody>
            {list.map((r) => (
              <tr key={r.id} data-runner={r.name}>
                <td>
                  <button className="link" onClick={() => setOpenId(r.id)} aria-expanded={openId === r.id}>
                    {r.name}
                  </button>
                  <div className="sub">{r.id}</div>
                </td>
                <td>
                  <State runner={r} />
                </td>
                <td>{r.version ?? "—"}</td>
                <td title={r.certificateExpiry}>expires {until(r.certificateExpiry)}</td>
                <td>
                  {!r.revoked && (
                    <button className="danger" onClick={() => revoke(r)} aria-label={`Revoke ${r.name}`}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {open && <RunnerDetail key={open.id} api={api} tenant={tenant} runner={open} />}
    </section>
  );
}

// RunnerDetail is what a connected runner says of itself: its host, how it
// runs apps, its engine's health and the nodes of its cluster.
function RunnerDetail({ api, tenant, runner }: { api: Api; tenant: string; runner: Runner }) {
  const st = useLoad(
    () => api.get<RunnerStatus>(`${tenantPath(tenant)}/runners/${encodeURIComponent(runner.id)}/proxy/status`),
    [api, tenant, runner.id],
    5000,
  );
  const s = st.data;
  const n = s?.node;
  const action = useAction();
  const { busy, error } = action;
  const [said, setSaid] = useState<string>();
  const path = `${tenantPath(tenant)}/runners/${encodeURIComponent(runner.id)}`;

  // run runs f, which says in a line what it did.
  const run = (f: () => Promise<string>) => {
    setSaid(undefined);
    return action.run(async () => setSaid(await f()));
  };
  const upgrade = () => {
    if (!window.confirm(`Upgrade ${runner.name} to the cameleer this control plane serves? Its node restarts on it, and rolls back by itself if it does not come up healthy.`)) return;
    run(async () => {
      const a = await api.call<{ from: string; to: string }>("POST", `${path}/upgrade`, {});
      return `Upgrade from ${a.from} to ${a.to} begun: its outcome shows here as the last upgrade.`;
    });
  };
  const bundle = () =>
    run(async () => {
      const { blob, name } = await api.download(`${path}/support-bundle`, `cameleer-support-${runner.name}.tar.gz`);
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = name;
      document.body.append(a);
      a.click();
      a.remove();
      // Later: a browser may still be reading it when click returns.
      setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
      return `Support bundle ${name} downloaded (${Math.round(blob.size / 1024)} KB).`;
    });

  return (
    <div className="panel" role="region" aria-label={`Runner ${runner.name}`}>
      <h3>{runner.name}</h3>
      <ErrorLine error={st.error} />
      <p>
        <button className="secondary" onClick={bundle} disabled={busy || !runner.connected}>
          Download a support bundle
        </button>{" "}
        <button className="secondary" onClick={upgrade} disabled={busy || !runner.connected}>
          Upgrade
        </button>{" "}
        {said && <span role="status">{said}</span>}
      </p>
      <ErrorLine error={error} />
      {s && (
        <p>
          {s.hostname} · {s.version} · up since {new Date(s.since).toLocaleString()} · apps run by{" "}
          <strong>{s.orchestrator || "nothing (no engine)"}</strong>
        </p>
      )}
      {n && (
        <>
          <p>
            Engine:{" "}
            <span className={`badge ${n.ready ? "ok" : "bad"}`} data-testid="engine-health">
              {n.ready ? "ready" : "not ready"}
            </span>
            {n.node && n.node.status !== "True" && ` (node ${n.node.reason ?? n.node.status}${n.node.message ? `: ${n.node.message}` : ""})`} · role {n.role}
            {n.lastUpgrade && ` · last upgrade ${n.lastUpgrade.from} → ${n.lastUpgrade.to}: ${n.lastUpgrade.result}${n.lastUpgrade.reason ? ` (${n.lastUpgrade.reason})` : ""}`}
          </p>
          <ul className="components" aria-label="Components">
            {n.components.map((c) => (
              <li key={c.name} className={c.ready ? "ok" : "bad"} title={c.message}>
                {c.name}: {c.ready ? "ready" : c.state}
                {c.restarts > 0 ? ` (${c.restarts} restarts)` : ""}
              </li>
            ))}
          </ul>
          {n.nodes && n.nodes.length > 0 && (
            <table aria-label="Nodes of the cluster">
              <Head cols={["Node", "Role", "Address", "Ready", "Kubelet", "Scheduling"]} />
              <tbody>
                {n.nodes.map((k) => (
                  <tr key={k.name} data-node={k.name}>
                    <td>{k.name}</td>
                    <td>{k.role}</td>
                    <td className="mono">{k.ip}</td>
                    <td>
                      <span className={`badge ${k.ready === "True" ? "ok" : "bad"}`}>{k.ready === "True" ? "ready" : k.ready || "unknown"}</span>
                    </td>
                    <td>{k.version}</td>
                    <td>{k.unschedulable ? "drained" : "on"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </div>
  );
}

function State({ runner }: { runner: Runner }) {
  if (runner.revoked) return <span className="badge bad">revoked</span>;
  if (runner.connected) {
    return (
      <>
        <span className="badge ok">connected</span>
        {runner.connectedSince && (
          <div className="sub" title={runner.connectedSince}>
            since {ago(runner.connectedSince)}
          </div>
        )}
      </>
    );
  }
  return (
    <span className="badge idle" title={runner.lastSeen}>
      not connected · last seen {ago(runner.lastSeen)}
    </span>
  );
}

function AddRunner({ token, onClose }: { token: RunnerToken; onClose: () => void }) {
  const command = token.install ?? token.command;
  const [copied, setCopied] = useState(false);
  return (
    <div className="panel" role="region" aria-label="Add a runner">
      <p>
        On a Linux host, as root, run this once (the token in it works once, until {new Date(token.expires).toLocaleString()}):
      </p>
      <pre>
        <code data-testid="install-command">{command}</code>
      </pre>
      <button
        onClick={() =>
          navigator.clipboard?.writeText(command).then(
            () => setCopied(true),
            () => setCopied(false),
          )
        }
      >
        {copied ? "Copied" : "Copy"}
      </button>{" "}
      <button className="secondary" onClick={onClose}>
        Done
      </button>
      <p className="hint">The runner shows up here, connected, once the command has finished.</p>
    </div>
  );
}

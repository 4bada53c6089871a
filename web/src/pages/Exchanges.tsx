import { useState, type FormEvent } from "react";
import { Api, tenantPath, type App, type Environment, type ExchangeDetail, type ExchangeSummary, type Original, type Replay } from "../api";
import { ErrorLine, useLoad } from "../ui";

interface Filter {
  route: string;
  status: string;
  from: string;
  to: string;
  q: string;
}

const noFilter: Filter = { route: "", status: "", from: "", to: "", q: "" };

// query is the filter as the exchanges API reads it; times from
// datetime-local fields are the browser's local time.
export function query(f: Filter, cursor?: string): string {
  const p = new URLSearchParams();
  if (f.route) p.set("route", f.route);
  if (f.status) p.set("status", f.status);
  if (f.from) p.set("from", new Date(f.from).toISOString());
  if (f.to) p.set("to", new Date(f.to).toISOString());
  if (f.q) p.set("q", f.q.trim());
  if (cursor) p.set("cursor", cursor);
  p.set("limit", "50");
  return p.toString();
}

export function micros(us: number): string {
  if (us < 1000) return `${us} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

// Exchanges: an app's traced exchanges, newest first, filtered by route,
// status, time and id; one exchange's timeline, message and exception, and
// its replay.
export function Exchanges({ api, tenant }: { api: Api; tenant: string }) {
  const envs = useLoad(() => api.get<Environment[]>(`${tenantPath(tenant)}/environments`), [api, tenant]);
  const [envName, setEnvName] = useState<string>();
  const env = envName ?? envs.data?.[0]?.name;
  const envPath = env ? `${tenantPath(tenant)}/environments/${encodeURIComponent(env)}` : undefined;
  const apps = useLoad(() => (envPath ? api.get<App[]>(`${envPath}/apps`) : Promise.resolve([])), [api, envPath]);
  const [appName, setAppName] = useState<string>();
  const app = appName ?? apps.data?.[0]?.name;
  const appPath = envPath && app ? `${envPath}/apps/${encodeURIComponent(app)}` : undefined;
  const [draft, setDraft] = useState<Filter>(noFilter);
  const [filter, setFilter] = useState<Filter>(noFilter);
  const [cursors, setCursors] = useState<string[]>([]);
  const page = useLoad(
    () => (appPath ? api.get<{ exchanges: ExchangeSummary[]; next?: string }>(`${appPath}/exchanges?${query(filter, cursors[cursors.length - 1])}`) : Promise.resolve(undefined)),
    [api, appPath, filter, cursors],
  );
  const [open, setOpen] = useState<string>();

  function search(e: FormEvent) {
    e.preventDefault();
    setCursors([]);
    setFilter(draft);
  }
  const set = (k: keyof Filter) => (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value });

  return (
    <section aria-labelledby="ex-title">
      <header className="page-head">
        <h2 id="ex-title">Exchanges</h2>
        <span>
          <label>
            Environment{" "}
            <select value={env ?? ""} onChange={(e) => (setEnvName(e.target.value), setAppName(undefined), setOpen(undefined))}>
              {(envs.data ?? []).map((e) => (
                <option key={e.name}>{e.name}</option>
              ))}
            </select>
          </label>{" "}
          <label>
            App{" "}
            <select value={app ?? ""} onChange={(e) => (setAppName(e.target.value), setOpen(undefined))}>
              {(apps.data ?? []).map((a) => (
                <option key={a.name}>{a.name}</option>
              ))}
            </select>
          </label>
        </span>
      </header>
      <form className="inline filters" onSubmit={search} aria-label="Filter exchanges">
        <label>
          Route <input value={draft.route} onChange={set("route")} />
        </label>
        <label>
          Status{" "}
          <select value={draft.status} onChange={set("status")}>
            <option value="">any</option>
            <option>failed</option>
            <option>handled</option>
            <option>completed</option>
          </select>
        </label>
        <label>
          From <input type="datetime-local" value={draft.from} onChange={set("from")} />
        </label>
        <label>
          To <input type="datetime-local" value={draft.to} onChange={set("to")} />
        </label>
        <label>
          Id or header <input value={draft.q} onChange={set("q")} placeholder="exchange, correlation or header value" />
        </label>
        <button type="submit">Search</button>
      </form>
      <ErrorLine error={envs.error ?? apps.error ?? page.error} />
      {apps.data && apps.data.length === 0 && <p>No app in {env} yet.</p>}
      {page.data && page.data.exchanges.length === 0 && <p>No exchange matches.</p>}
      {page.data && page.data.exchanges.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Started</th>
              <th scope="col">Route</th>
              <th scope="col">Status</th>
              <th scope="col">Duration</th>
              <th scope="col">Exchange</th>
            </tr>
          </thead>
          <tbody>
            {page.data.exchanges.map((x) => (
              <tr key={x.id} data-exchange={x.id} aria-selected={x.id === open}>
                <td>{new Date(x.start).toLocaleString()}</td>
                <td>{x.route}</td>
                <td>
                  <span className={`badge ${x.status === "failed" ? "bad" : x.status === "handled" ? "idle" : "ok"}`} title={x.errorMessage}>
                    {x.status}
                  </span>
                  {x.errorType && <div className="sub">{x.errorType}</div>}
                </td>
                <td>{micros(x.durationMicros)}</td>
                <td>
                  <button className="link mono" onClick={() => setOpen(x.id)}>
                    {x.id}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p>
        {cursors.length > 0 && (
          <button className="secondary" onClick={() => setCursors(cursors.slice(0, -1))}>
            Newer
          </button>
        )}{" "}
        {page.data?.next && (
          <button className="secondary" onClick={() => setCursors([...cursors, page.data!.next!])}>
            Older
          </button>
        )}
      </p>
      {appPath && open && <Exchange key={open} api={api} appPath={appPath} id={open} onOpen={setOpen} />}
    </section>
  );
}

// Exchange is one exchange: its timeline, message, exception and replay.
function Exchange({ api, appPath, id, onOpen }: { api: Api; appPath: string; id: string; onOpen: (id: string) => void }) {
  const path = `${appPath}/exchanges/${encodeURIComponent(id)}`;
  // Asked again every 5 s: a failed exchange becomes replayable once its
  // runner tells the control plane it keeps the original.
  const x = useLoad(() => api.get<ExchangeDetail>(path), [api, path], 5000);
  // What its runner keeps of its original: where it failed, if a replay
  // may re-enter there.
  const kept = useLoad(() => api.get<{ original: Original | null; replays: Replay[] }>(`${path}/replays`), [api, path], 5000);
  const failedAt = kept.data?.original?.failedAt?.node;
  const [replay, setReplay] = useState<Replay>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();

  async function doReplay(atNode: boolean) {
    setBusy(true);
    setError(undefined);
    try {
      setReplay(await api.call<Replay>("POST", `${path}/replay`, atNode ? { at: "node" } : {}));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  const d = x.data;
  return (
    <div className="panel" role="region" aria-label={`Exchange ${id}`}>
      <h3 className="mono">{id}</h3>
      <ErrorLine error={x.error} />
      {d && (
        <>
          <p>
            {d.route} · <strong>{d.status}</strong> · {micros(d.durationMicros)}
            {d.redeliveries ? ` · ${d.redeliveries} redeliveries` : ""}
            {d.replayOf && (
              <>
                {" "}
                · replays{" "}
                <button className="link mono" onClick={() => onOpen(d.replayOf!)}>
                  {d.replayOf}
                </button>
              </>
            )}
          </p>
          {d.nodes && d.nodes.length > 0 && <Timeline x={d} />}
          {d.errorType && (
            <details open>
              <summary>
                Exception: {d.errorType}: {d.errorMessage}
              </summary>
              {d.stack && <pre className="loglines">{d.stack}</pre>}
            </details>
          )}
          <h4>Message, as it entered the route (redacted in the app)</h4>
          {d.headers && Object.keys(d.headers).length > 0 && (
            <table className="headers">
              <caption className="sr-only">Headers</caption>
              <tbody>
                {Object.entries(d.headers).map(([k, v]) => (
                  <tr key={k}>
                    <th scope="row">{k}</th>
                    <td className="mono">{v}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <pre aria-label="Body">{d.body ?? "(no body kept)"}</pre>
          {d.bodyTruncated && <p className="hint">Cut at the agent's bound: {d.bodySize} bytes in all.</p>}
          {d.status === "failed" && d.replayable && (
            <p>
              <button onClick={() => doReplay(false)} disabled={busy}>
                Replay
              </button>{" "}
              {failedAt && (
                <button className="secondary" onClick={() => doReplay(true)} disabled={busy}>
                  Replay at {failedAt}
                </button>
              )}
            </p>
          )}
          <ErrorLine error={error} />
          {replay && (
            <p role="status" aria-label="Replay">
              Replay {replay.status}
              {replay.replay && (
                <>
                  {" "}
                  as{" "}
                  <button className="link mono" onClick={() => onOpen(replay.replay!)}>
                    {replay.replay}
                  </button>
                </>
              )}
              {replay.error && `: ${replay.error}`}
              {replay.warning && <span className="hint"> ({replay.warning})</span>}
            </p>
          )}
          {d.correlated && d.correlated.length > 0 && (
            <>
              <h4>Correlated exchanges</h4>
              <ul>
                {d.correlated.map((c) => (
                  <li key={c.id}>
                    <button className="link mono" onClick={() => onOpen(c.id)}>
                      {c.id}
                    </button>{" "}
                    {c.route} · {c.status}
                  </li>
                ))}
              </ul>
            </>
          )}
        </>
      )}
    </div>
  );
}

// Timeline draws each node's run as a bar at its offset, as long as it
// took, nested runs indented.
export function Timeline({ x }: { x: ExchangeDetail }) {
  const nodes = x.nodes ?? [];
  const total = Math.max(x.durationMicros, ...nodes.map((n) => n.offsetMicros + n.durationMicros), 1);
  const depth = (i: number): number => (nodes[i].parent < 0 ? 0 : 1 + depth(nodes[i].parent));
  return (
    <ol className="timeline" aria-label="Timeline">
      {nodes.map((n, i) => (
        <li key={i} className={n.failed ? "failed" : ""} data-node={n.id}>
          <span className="label" style={{ paddingLeft: `${depth(i)}rem` }}>
            {n.label || n.type} <span className="sub">{n.id}</span>
          </span>
          <span className="track">
            <span className="bar" style={{ marginLeft: `${(100 * n.offsetMicros) / total}%`, width: `${Math.max((100 * n.durationMicros) / total, 0.5)}%` }} />
          </span>
          <span className="dur">{micros(n.durationMicros)}</span>
        </li>
      ))}
    </ol>
  );
}

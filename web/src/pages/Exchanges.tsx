import { useEffect, useState, type FormEvent } from "react";
import { Api, type ExchangeDetail, type ExchangeSummary, type Original, type Replay } from "../api";
import { AppChoice, useAppChoice } from "./AppChoice";
import { BulkReplay } from "./BulkReplay";
import { ErrorLine, Head, Pager, useAction, useLoad, usePages } from "../ui";

export interface Filter {
  route: string;
  node: string;
  status: string;
  from: string;
  to: string;
  q: string;
}

const noFilter: Filter = { route: "", node: "", status: "", from: "", to: "", q: "" };

// fromURL is the filter a link gave (the route diagram's: ?route=&node=&status=).
export function fromURL(search: string): Filter {
  const p = new URLSearchParams(search);
  return { ...noFilter, route: p.get("route") ?? "", node: p.get("node") ?? "", status: p.get("status") ?? "" };
}

// query is the filter as the exchanges API reads it; times from
// datetime-local fields are the browser's local time.
export function query(f: Filter, cursor?: string): string {
  const p = new URLSearchParams();
  if (f.route) p.set("route", f.route);
  if (f.node) p.set("node", f.node);
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
  const choice = useAppChoice(api, tenant);
  const { env, appPath } = choice;
  const [draft, setDraft] = useState<Filter>(() => fromURL(window.location.search));
  const [filter, setFilter] = useState<Filter>(draft);
  const pages = usePages<string>();
  // Following, the newest page is asked again every 5 s; an older page
  // stays as it was read.
  const [follow, setFollow] = useState(false);
  const page = useLoad(
    () => (appPath ? api.get<{ exchanges: ExchangeSummary[]; next?: string }>(`${appPath}/exchanges?${query(filter, pages.start)}`) : Promise.resolve(undefined)),
    [api, appPath, filter, pages.start],
    follow && pages.newest ? 5000 : undefined,
  );
  const [open, setOpen] = useState<string>();
  // Time to interactive, for docs/benchmarks.md: the first page shown.
  const shown = page.data !== undefined;
  useEffect(() => {
    if (shown && performance.getEntriesByName("cameleer:exchanges-ready").length === 0) performance.mark("cameleer:exchanges-ready");
  }, [shown]);

  function search(e: FormEvent) {
    e.preventDefault();
    pages.reset();
    // A copy: searching again with the same filter asks again.
    setFilter({ ...draft });
  }
  const set = (k: keyof Filter) => (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value });

  return (
    <section aria-labelledby="ex-title">
      <header className="page-head">
        <h2 id="ex-title">Exchanges</h2>
        <span>
          <AppChoice choice={choice} onChange={() => (setOpen(undefined), pages.reset())} />
        </span>
      </header>
      <form className="inline filters" onSubmit={search} aria-label="Filter exchanges">
        <label>
          Route <input value={draft.route} onChange={set("route")} />
        </label>
        <label>
          Failed at node <input value={draft.node} onChange={set("node")} />
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
        <label>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow new ones
        </label>
      </form>
      <ErrorLine error={choice.error ?? page.error} />
      {choice.apps && choice.apps.length === 0 && <p>No app in {env} yet.</p>}
      {page.data && page.data.exchanges.length === 0 && <p>No exchange matches.</p>}
      {page.data && page.data.exchanges.length > 0 && (
        <table>
          <Head cols={["Started", "Route", "Status", "Duration", "Exchange"]} />
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
      <Pager pages={pages} next={page.data?.next || undefined} />
      {appPath && open && <Exchange key={open} api={api} appPath={appPath} id={open} onOpen={setOpen} />}
      {appPath && <BulkReplay key={`${appPath}?${filter.route}&${filter.status}`} api={api} appPath={appPath} route={filter.route} status={filter.status} />}
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
  const { busy, error, run } = useAction();
  const [edit, setEdit] = useState<{ body: string; headers: string }>();

  const doReplay = (atNode: boolean, edited?: { body: string; headers: string }) =>
    run(async () => {
      const req: Record<string, unknown> = atNode ? { at: "node" } : {};
      if (edited) {
        req.body = edited.body;
        req.headers = parseHeaders(edited.headers);
      }
      setReplay(await api.call<Replay>("POST", `${path}/replay`, req));
      setEdit(undefined);
    });

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
              {d.stack && (
                <pre className="loglines" tabIndex={0} aria-label="Stack">
                  {d.stack}
                </pre>
              )}
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
              )}{" "}
              {!edit && (
                <button className="secondary" onClick={() => setEdit({ body: d.body ?? "", headers: formatHeaders(d.headers) })} disabled={busy}>
                  Edit and replay
                </button>
              )}
            </p>
          )}
          {edit && (
            <form
              className="edit"
              aria-label="Edit and replay"
              onSubmit={(e) => {
                e.preventDefault();
                doReplay(false, edit);
              }}
            >
              <p className="hint">
                An edited message replaces the original's body and all its headers, from the route's start (admin role). The
                trace's values are redacted, and headers it did not keep are not here: write what the replay needs.
              </p>
              {(d.bodyTruncated || d.body === undefined) && (
                <p className="error">
                  {d.body === undefined
                    ? "The trace kept no body: the body sent is what you write here."
                    : `The trace's body is cut at the agent's bound (${d.bodySize} bytes in all): the body sent is only what is here.`}
                </p>
              )}
              <label>
                Body
                <textarea rows={4} value={edit.body} onChange={(e) => setEdit({ ...edit, body: e.target.value })} />
              </label>
              <label>
                Headers, one "Name: value" a line
                <textarea rows={4} value={edit.headers} onChange={(e) => setEdit({ ...edit, headers: e.target.value })} />
              </label>
              <p>
                <button type="submit" disabled={busy}>
                  Replay edited
                </button>{" "}
                <button type="button" className="secondary" onClick={() => setEdit(undefined)}>
                  Cancel
                </button>
              </p>
            </form>
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

// formatHeaders and parseHeaders turn headers into "Name: value" lines
// and back; a line without a colon is a header with an empty value.
export function formatHeaders(h: Record<string, string> | undefined): string {
  return Object.entries(h ?? {})
    .map(([k, v]) => `${k}: ${v}`)
    .join("\n");
}

export function parseHeaders(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const i = line.indexOf(":");
    if (i < 0) out[line.trim()] = "";
    else out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
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

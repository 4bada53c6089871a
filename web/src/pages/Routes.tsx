import { useState } from "react";
import { Api, type Aggregate, type Point, type RouteView } from "../api";
import { AppChoice, useAppChoice } from "./AppChoice";
import { ErrorLine, useLoad } from "../ui";
import { micros } from "./Exchanges";

const windows = ["5m", "15m", "1h", "24h"] as const;

// Chart windows and their steps: at most 60 points a line.
const steps: Record<(typeof windows)[number], string> = { "5m": "1m", "15m": "1m", "1h": "1m", "24h": "30m" };

export const box = { w: 190, h: 58, gapX: 24, gapY: 34 };

export interface Placed {
  id: string;
  x: number;
  y: number;
}

// layout places a route's nodes in layers: each node one layer below the
// lowest node with an edge to it (edges that go back up, a loop's, are
// left out), nodes of a layer side by side in the route's order, each
// layer centred. Nodes no edge reaches go in the route's order under
// their parent, else at the top.
export function layout(r: RouteView): { placed: Map<string, Placed>; width: number; height: number } {
  const order = new Map(r.nodes.map((n) => [n.id, n.order]));
  const ids = [...r.nodes].sort((a, b) => a.order - b.order).map((n) => n.id);
  const known = new Set(ids);
  const edges = r.edges.filter(([a, b]) => known.has(a) && known.has(b) && a !== b);
  // A node no edge reaches hangs under its parent.
  const reached = new Set(edges.map(([, b]) => b));
  for (const n of r.nodes) if (!reached.has(n.id) && n.parent && known.has(n.parent)) edges.push([n.parent, n.id]);
  const outs = new Map<string, string[]>();
  const indeg = new Map(ids.map((id) => [id, 0]));
  for (const [a, b] of edges) {
    outs.set(a, [...(outs.get(a) ?? []), b]);
    indeg.set(b, indeg.get(b)! + 1);
  }
  // Kahn's order; a cycle is broken at its node first in the route.
  const layer = new Map<string, number>();
  const done = new Set<string>();
  const ready = ids.filter((id) => indeg.get(id) === 0);
  while (done.size < ids.length) {
    if (ready.length === 0) ready.push(ids.find((id) => !done.has(id))!);
    ready.sort((a, b) => order.get(a)! - order.get(b)!);
    const id = ready.shift()!;
    if (done.has(id)) continue;
    done.add(id);
    if (!layer.has(id)) layer.set(id, 0);
    for (const b of outs.get(id) ?? []) {
      if (done.has(b)) continue;
      layer.set(b, Math.max(layer.get(b) ?? 0, layer.get(id)! + 1));
      indeg.set(b, indeg.get(b)! - 1);
      if (indeg.get(b) === 0) ready.push(b);
    }
  }
  const rows: string[][] = [];
  for (const id of ids) (rows[layer.get(id)!] ??= []).push(id);
  const dense = rows.filter((row) => row && row.length > 0);
  const widest = Math.max(1, ...dense.map((row) => row.length));
  const width = widest * box.w + (widest - 1) * box.gapX;
  const placed = new Map<string, Placed>();
  dense.forEach((row, i) => {
    const rowWidth = row.length * box.w + (row.length - 1) * box.gapX;
    row.forEach((id, j) => placed.set(id, { id, x: (width - rowWidth) / 2 + j * (box.w + box.gapX), y: i * (box.h + box.gapY) }));
  });
  return { placed, width, height: dense.length === 0 ? 0 : dense.length * box.h + (dense.length - 1) * box.gapY };
}

export function percent(a: Aggregate): string {
  if (a.count === 0) return "0 %";
  const p = (100 * a.failures) / a.count;
  return `${p < 10 && p > 0 ? p.toFixed(1) : Math.round(p)} %`;
}

// figures is a node's or route's line of figures, as the page shows it.
export function figures(a: Aggregate): string {
  return `${a.count} · ${percent(a)} failed · p95 ${micros(Math.round(a.p95Micros))}`;
}

// Routes: an app's routes drawn from their models, every route on one
// page, each node with its count, error rate and p95 over the window
// chosen, asked again every 5 s; throughput and error rate over time, of
// the app and of each route. A node's click opens its failed exchanges.
export function Routes({ api, tenant, onOpen }: { api: Api; tenant: string; onOpen: (path: string) => void }) {
  const choice = useAppChoice(api, tenant);
  const { env, app, appPath } = choice;
  const [win, setWin] = useState<(typeof windows)[number]>("1h");
  const routes = useLoad(
    () => (appPath ? api.get<RouteView[]>(`${appPath}/routes?window=${win}`) : Promise.resolve(undefined)),
    [api, appPath, win],
    5000,
  );

  // failedOf opens the failed exchanges of a route, or those that failed
  // at a node: whatever route they began in (a direct: route's node fails
  // in its caller's exchange).
  function failedOf(route: string, node?: string) {
    const p = new URLSearchParams({ env: env!, app: app!, status: "failed" });
    if (node) p.set("node", node);
    else p.set("route", route);
    onOpen(`/exchanges?${p}`);
  }

  return (
    <section aria-labelledby="routes-title">
      <header className="page-head">
        <h2 id="routes-title">Routes</h2>
        <span>
          <AppChoice choice={choice} />{" "}
          <label>
            Window{" "}
            <select aria-label="Window" value={win} onChange={(e) => setWin(e.target.value as (typeof windows)[number])}>
              {windows.map((w) => (
                <option key={w}>{w}</option>
              ))}
            </select>
          </label>
        </span>
      </header>
      <ErrorLine error={choice.error ?? routes.error} />
      {choice.apps && choice.apps.length === 0 && <p>No app in {env} yet.</p>}
      {appPath && <Chart api={api} path={`${appPath}/series?window=${win}&step=${steps[win]}`} title={`${app}: throughput and error rate`} />}
      {routes.data && routes.data.length === 0 && <p>No route of {app} has run yet: its agent sends the routes once the app has started.</p>}
      <div className="routes-grid">
        {routes.data?.map((r) => (
          <div key={`${r.context}/${r.id}`} className="panel route" role="region" aria-label={`Route ${r.id}`}>
            <h3>
              {r.id} <span className="sub mono">{r.from}</span>
            </h3>
            <p className="figures" data-testid="route-figures">
              {figures(r.stats)}{" "}
              {r.stats.failures > 0 && (
                <button className="link" onClick={() => failedOf(r.id)}>
                  its failed exchanges
                </button>
              )}
            </p>
            {r.nodes.length > 0 && <Diagram route={r} onNode={(node) => failedOf(r.id, node)} />}
            <Chart api={api} path={`${appPath}/series?route=${encodeURIComponent(r.id)}&window=${win}&step=${steps[win]}`} title={`${r.id}: throughput and error rate`} small />
          </div>
        ))}
      </div>
    </section>
  );
}

// Diagram draws one route as an SVG graph; every node is a button.
// A click on the from endpoint asks for the route's failures (onNode of
// undefined), on another node for those that failed at it.
export function Diagram({ route, onNode }: { route: RouteView; onNode: (id: string | undefined) => void }) {
  const { placed, width, height } = layout(route);
  const pad = 4;
  // An id of the route's, of characters any url(#…) reference takes.
  const arrow = `arrow-${route.context}-${route.id}`.replace(/[^A-Za-z0-9_-]/g, "_");
  return (
    <div className="diagram">
      <svg width={width + 2 * pad} height={height + 2 * pad} role="group" aria-label={`Diagram of route ${route.id}`}>
        <defs>
          <marker id={arrow} viewBox="0 0 8 8" refX="8" refY="4" markerWidth="8" markerHeight="8" orient="auto">
            <path d="M0,0 L8,4 L0,8 z" className="arrowhead" />
          </marker>
        </defs>
        <g transform={`translate(${pad},${pad})`}>
          {route.edges.map(([a, b]) => {
            const p = placed.get(a);
            const q = placed.get(b);
            if (!p || !q) return null;
            const x1 = p.x + box.w / 2;
            const y1 = p.y + box.h;
            const x2 = q.x + box.w / 2;
            const y2 = q.y;
            const mid = (y1 + y2) / 2;
            const d = y2 > y1 ? `M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}` : `M${x1},${y1} C${x1 + 60},${y1 + 40} ${x2 + 60},${y2 - 40} ${x2},${y2}`;
            return <path key={`${a}>${b}`} d={d} className="edge" markerEnd={`url(#${arrow})`} />;
          })}
          {route.nodes.map((n) => {
            const p = placed.get(n.id)!;
            // The from endpoint has no figures of its own: the route's are its.
            const stats = n.type === "from" ? route.stats : n.stats;
            const failing = stats.failures > 0;
            const open = () => onNode(n.type === "from" ? undefined : n.id);
            // What the box shows, its accessible name too (and what a click does).
            const lines = [clip(n.label || n.type || n.id, 26), clip(`${n.type ?? ""} ${n.id}`.trim(), 30), figures(stats)];
            return (
              <g
                key={n.id}
                transform={`translate(${p.x},${p.y})`}
                className={`node${failing ? " failing" : ""}`}
                data-node={n.id}
                role="button"
                tabIndex={0}
                aria-label={`${lines.join(" ")}${failing ? ", open its failed exchanges" : ""}`}
                onClick={open}
                onKeyDown={(e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), open())}
              >
                <rect width={box.w} height={box.h} rx={6} />
                {/* One text, its lines apart by a space, so that what it
                    reads is what its name says. */}
                <text x={8} y={18}>
                  <tspan className="node-label">{lines[0]}</tspan>{" "}
                  <tspan x={8} dy={16} className="node-id">
                    {lines[1]}
                  </tspan>{" "}
                  <tspan x={8} dy={16} className="node-figures" data-testid="node-figures">
                    {lines[2]}
                  </tspan>
                </text>
              </g>
            );
          })}
        </g>
      </svg>
    </div>
  );
}

function clock(iso: string): string {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function clip(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

// Chart draws a series' throughput (a line, per second) and error rate (a
// line, 0 to 100 %) over time, asked again every 15 s, with the figures
// in a table for screen readers.
export function Chart({ api, path, title, small }: { api: Api; path: string; title: string; small?: boolean }) {
  const series = useLoad(() => api.get<Point[]>(path), [api, path], 15000);
  const pts = series.data ?? [];
  const w = small ? 560 : 1100;
  const h = small ? 70 : 120;
  const top = Math.max(...pts.map((p) => p.throughput), 0);
  const x = (i: number) => (pts.length > 1 ? (i * w) / (pts.length - 1) : 0);
  const line = (f: (p: Point) => number) => pts.map((p, i) => `${x(i).toFixed(1)},${(h - f(p) * h).toFixed(1)}`).join(" ");
  const last = pts[pts.length - 1];
  return (
    <figure className={`chart${small ? " small" : ""}`} aria-label={title}>
      <ErrorLine error={series.error} />
      <svg viewBox={`0 0 ${w} ${h}`} width="100%" height={h} preserveAspectRatio="none" aria-hidden="true">
        <polyline points={line((p) => (top > 0 ? p.throughput / top : 0))} className="throughput" />
        <polyline points={line((p) => p.errorRate)} className="errors" />
      </svg>
      <figcaption className="sub">
        {pts.length > 0 && `${clock(pts[0].time)} to ${clock(last.time)}: `}
        <span className="key throughput">throughput</span> up to {top.toFixed(top < 10 ? 2 : 0)}/s,{" "}
        <span className="key errors">error rate</span> 0-100 %{last ? `; last step ${last.throughput.toFixed(2)}/s, ${(100 * last.errorRate).toFixed(1)} % failed` : ""}
      </figcaption>
      <table className="sr-only">
        <caption>{title}</caption>
        <tbody>
          {pts.map((p) => (
            <tr key={p.time}>
              <th scope="row">{p.time}</th>
              <td>{p.throughput.toFixed(2)}/s</td>
              <td>{(100 * p.errorRate).toFixed(1)} %</td>
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}

import { useEffect, useState, type FormEvent } from "react";
import { Api, type Bulk, type ExchangeSummary } from "../api";
import { ErrorLine, useAction, useLoad } from "../ui";

// countMatching counts the exchanges a bulk replay would walk (route,
// status, from..to), 500 a page, stopping at most: what its progress is
// measured against.
export async function countMatching(api: Api, appPath: string, b: { route: string; status: string; from?: string; to?: string }, most = 10000): Promise<number> {
  let n = 0;
  let cursor: string | undefined;
  do {
    const p = new URLSearchParams({ route: b.route, status: b.status, limit: "500" });
    if (b.from) p.set("from", b.from);
    if (b.to) p.set("to", b.to);
    if (cursor) p.set("cursor", cursor);
    const page = await api.get<{ exchanges: ExchangeSummary[]; next?: string }>(`${appPath}/exchanges?${p}`);
    n += page.exchanges.length;
    cursor = page.next;
  } while (cursor && n < most);
  return n;
}

export function handled(b: Bulk): number {
  return b.completed + b.failed + b.skipped + b.errors;
}

// BulkReplay replays every failed (or handled) exchange of a route in a
// time range at a rate, with its progress, pause, resume and cancel; one
// at a time per app, as the control plane runs them.
export function BulkReplay({ api, appPath, route, status }: { api: Api; appPath: string; route: string; status: string }) {
  // Asked every second while one runs, every 10 s otherwise.
  const [running, setRunning] = useState(false);
  const bulks = useLoad(() => api.get<Bulk[]>(`${appPath}/bulk-replays`), [api, appPath], running ? 1000 : 10000);
  const current = bulks.data?.[0];
  const nowRunning = current?.state === "running";
  useEffect(() => setRunning(nowRunning), [nowRunning]);
  const [form, setForm] = useState({ route, status: status === "handled" ? "handled" : "failed", from: "", rate: "10" });
  const [confirm, setConfirm] = useState<{ n: number; from: string }>();
  // What the bulk replay shown walks: counted when it starts, or when the
  // page finds one it did not start.
  const [totals, setTotals] = useState<Record<string, number>>({});
  const { busy, error, run } = useAction();
  const total = current ? totals[current.id] : undefined;

  const unknown = current && total === undefined ? current : undefined;
  useEffect(() => {
    if (!unknown) return;
    // A bulk replay with no end walks back from when it was made.
    const to = unknown.to.startsWith("0001") ? unknown.created : unknown.to;
    countMatching(api, appPath, { route: unknown.route, status: unknown.status, from: unknown.from, to }).then(
      (n) => setTotals((t) => ({ ...t, [unknown.id]: t[unknown.id] ?? Math.max(n, handled(unknown)) })),
      () => undefined,
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api, appPath, unknown?.id]);

  function ask(e: FormEvent) {
    e.preventDefault();
    // The control plane's default start, made explicit so that what is
    // counted is what is replayed.
    const since = form.from ? new Date(form.from).toISOString() : new Date(Date.now() - 86400_000).toISOString();
    run(async () => setConfirm({ n: await countMatching(api, appPath, { route: form.route, status: form.status, from: since }), from: since }));
  }

  function start() {
    run(async () => {
      const b = await api.call<Bulk>("POST", `${appPath}/bulk-replays`, {
        route: form.route,
        status: form.status,
        rate: Number(form.rate),
        from: confirm!.from,
      });
      setTotals((t) => ({ ...t, [b.id]: confirm!.n }));
      setConfirm(undefined);
      bulks.reload();
    });
  }

  function control(op: string) {
    run(async () => {
      await api.call<Bulk>("POST", `${appPath}/bulk-replays/${encodeURIComponent(current!.id)}/${op}`);
      bulks.reload();
    });
  }

  const active = current && (current.state === "running" || current.state === "paused");
  return (
    <div className="panel" role="region" aria-label="Bulk replay">
      <h3>Bulk replay</h3>
      <ErrorLine error={bulks.error ?? error} />
      {current && (
        <div aria-label="Bulk replay progress" role="group">
          <p role="status">
            {current.id}: {current.status} exchanges of <strong>{current.route}</strong>, {current.rate}/s, <strong>{current.state}</strong>
          </p>
          <progress max={total || 1} value={total ? Math.min(handled(current), total) : 0} aria-label="Replayed">
            {handled(current)}
          </progress>{" "}
          <span data-testid="bulk-counts">
            {handled(current)}
            {total !== undefined ? ` of ${total}` : ""}: {current.completed} completed, {current.failed} failed again, {current.skipped} skipped, {current.errors} not run
          </span>
          {current.lastError && <p className="hint">Last: {current.lastError}</p>}
          <p>
            {current.state === "running" && (
              <button className="secondary" onClick={() => control("pause")} disabled={busy}>
                Pause
              </button>
            )}
            {(current.state === "paused" || current.state === "cancelled") && (
              <button className="secondary" onClick={() => control("resume")} disabled={busy}>
                Resume
              </button>
            )}{" "}
            {active && (
              <button className="danger" onClick={() => control("cancel")} disabled={busy}>
                Cancel
              </button>
            )}
          </p>
        </div>
      )}
      {!active && confirm === undefined && (
        <form className="inline" onSubmit={ask} aria-label="Start a bulk replay">
          <label>
            Route <input required value={form.route} onChange={(e) => setForm({ ...form, route: e.target.value })} />
          </label>
          <label>
            Status{" "}
            <select value={form.status} onChange={(e) => setForm({ ...form, status: e.target.value })}>
              <option>failed</option>
              <option>handled</option>
            </select>
          </label>
          <label>
            Since <input type="datetime-local" value={form.from} onChange={(e) => setForm({ ...form, from: e.target.value })} />
          </label>
          <label>
            Per second <input type="number" min={1} max={100} value={form.rate} onChange={(e) => setForm({ ...form, rate: e.target.value })} />
          </label>
          <button type="submit" disabled={busy}>
            Replay all…
          </button>
          <span className="hint">Since: a day ago if empty.</span>
        </form>
      )}
      {confirm !== undefined && (
        <p>
          Replay {confirm.n}
          {confirm.n >= 10000 ? " or more" : ""} {form.status} exchanges of {form.route}, {form.rate} a second?{" "}
          <button onClick={start} disabled={busy || confirm.n === 0}>
            Start
          </button>{" "}
          <button className="secondary" onClick={() => setConfirm(undefined)}>
            Cancel
          </button>
        </p>
      )}
    </div>
  );
}

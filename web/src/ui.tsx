import { useEffect, useRef, useState } from "react";
import { ApiError } from "./api";

// ErrorLine shows what went wrong in one line, where it happened.
export function ErrorLine({ error }: { error: unknown }) {
  if (error == null) return null;
  const text = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  return (
    <p role="alert" className="error">
      {text}
    </p>
  );
}

// useLoad runs load when deps change (and every refreshMs, if given), and
// keeps its last result and error: a failed refresh keeps what was shown;
// new deps (another app, another window) clear it, so nothing of the
// old ones shows under the new.
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], refreshMs?: number) {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>();
  const [tick, setTick] = useState(0);
  const last = useRef<unknown[]>(deps);
  useEffect(() => {
    if (last.current.length !== deps.length || deps.some((d, i) => !Object.is(d, last.current[i]))) {
      last.current = deps;
      setData(undefined);
      setError(undefined);
    }
    let live = true;
    load().then(
      (d) => {
        if (live) {
          setData(d);
          setError(undefined);
        }
      },
      (e) => live && setError(e),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  useEffect(() => {
    if (!refreshMs) return;
    const id = setInterval(() => setTick((t) => t + 1), refreshMs);
    return () => clearInterval(id);
  }, [refreshMs]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

// ago says how long ago an RFC 3339 time was, roughly.
export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return "never";
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 0) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// until says how long until an RFC 3339 time, roughly, or that it passed.
export function until(iso: string, now = Date.now()): string {
  const s = Math.round((Date.parse(iso) - now) / 1000);
  if (s <= 0) return "expired";
  if (s < 3600) return `in ${Math.ceil(s / 60)} min`;
  if (s < 86400) return `in ${Math.floor(s / 3600)} h`;
  return `in ${Math.floor(s / 86400)} d`;
}

// Head is a table's header row: a column per name; a last, unnamed column
// of buttons when hidden is given (its name for screen readers only).
export function Head({ cols, hidden }: { cols: string[]; hidden?: string }) {
  return (
    <thead>
      <tr>
        {cols.map((c) => (
          <th key={c} scope="col">
            {c}
          </th>
        ))}
        {hidden && (
          <th scope="col">
            <span className="sr-only">{hidden}</span>
          </th>
        )}
      </tr>
    </thead>
  );
}

// useAction runs what a user asked for, one at a time: busy while it
// runs, its error kept (one line, ErrorLine) until the next.
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  async function run(f: () => Promise<void>) {
    setBusy(true);
    setError(undefined);
    try {
      await f();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  return { busy, error, run };
}

// usePages is where a list read a page at a time, newest first, stands:
// start is where the page shown starts (undefined: the newest page),
// older and newer move by one page.
export function usePages<C>() {
  const [starts, setStarts] = useState<C[]>([]);
  return {
    start: starts[starts.length - 1] as C | undefined,
    newest: starts.length === 0,
    older: (next: C) => setStarts([...starts, next]),
    newer: () => setStarts(starts.slice(0, -1)),
    reset: () => setStarts([]),
  };
}

// Pager is the Newer and Older buttons of pages; next is where the older
// page starts, undefined when there is none.
export function Pager<C>({ pages, next }: { pages: ReturnType<typeof usePages<C>>; next: C | undefined }) {
  return (
    <p>
      {!pages.newest && (
        <button className="secondary" onClick={pages.newer}>
          Newer
        </button>
      )}{" "}
      {next !== undefined && (
        <button className="secondary" onClick={() => pages.older(next)}>
          Older
        </button>
      )}
    </p>
  );
}

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

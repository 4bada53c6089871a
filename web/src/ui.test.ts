import { act, renderHook } from "@testing-library/react";
import { ago, until, useLoad } from "./ui";

describe("times", () => {
  const now = Date.parse("2026-12-06T10:00:00Z");
  it("says how long ago", () => {
    expect(ago(undefined, now)).toBe("never");
    expect(ago("2026-12-06T09:59:30Z", now)).toBe("30 s ago");
    expect(ago("2026-12-06T07:00:00Z", now)).toBe("3 h ago");
    expect(ago("2026-12-01T10:00:00Z", now)).toBe("5 d ago");
  });
  it("says how long until", () => {
    expect(until("2026-12-06T09:00:00Z", now)).toBe("expired");
    expect(until("2026-12-06T10:10:00Z", now)).toBe("in 10 min");
    expect(until("2027-12-06T10:00:00Z", now)).toBe("in 365 d");
  });
});

describe("useLoad", () => {
  it("clears what it showed when its inputs change, and keeps it across refreshes", async () => {
    let answer = "a-1";
    const pending: Array<() => void> = [];
    const load = () => new Promise<string>((ok) => pending.push(() => ok(answer)));
    const { result, rerender } = renderHook(({ app }) => useLoad(load, [app]), { initialProps: { app: "a" } });
    await act(async () => pending.shift()!());
    expect(result.current.data).toBe("a-1");
    act(() => result.current.reload());
    expect(result.current.data).toBe("a-1"); // a refresh under way keeps it
    await act(async () => pending.shift()!());
    answer = "b-1";
    rerender({ app: "b" });
    expect(result.current.data).toBeUndefined(); // not app a's under app b
    await act(async () => pending.pop()!());
    expect(result.current.data).toBe("b-1");
  });
});

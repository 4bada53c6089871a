import { act, render, screen, waitFor, within } from "@testing-library/react";
import { vi } from "vitest";
import userEvent from "@testing-library/user-event";
import { Api } from "../api";
import { Exchanges, Timeline, formatHeaders, fromURL, micros, parseHeaders, query } from "./Exchanges";

const base = "/api/v1/tenants/acme/environments/dev/apps/deliveries";

// The answers of a control plane with one app, one failed exchange whose
// original its runner keeps, and a replay that completes.
function fakeApi(calls: string[], bodies: Record<string, unknown> = {}) {
  let bulk: Record<string, unknown> | undefined;
  return new Api("t", async (url, init) => {
    const key = `${init?.method ?? "GET"} ${String(url)}`;
    calls.push(key);
    if (init?.body) bodies[key] = JSON.parse(String(init.body));
    if (key === `GET ${base}/bulk-replays`) return Response.json(bulk ? [bulk] : []);
    if (key === `POST ${base}/bulk-replays`) {
      const b = bodies[key] as { route: string; status: string; from: string; rate: number };
      bulk = { id: "b1", ...b, to: "0001-01-01T00:00:00Z", state: "done", completed: 1, failed: 0, skipped: 0, errors: 0, created: "", updated: "" };
      return Response.json(bulk, { status: 202 });
    }
    if (key === "GET /api/v1/tenants/acme/environments") return Response.json([{ name: "dev", created: "", env: {}, secrets: [] }]);
    if (key === "GET /api/v1/tenants/acme/environments/dev/apps") return Response.json([{ name: "deliveries", environment: "dev", replicas: 1, phase: "running" }]);
    if (key.startsWith(`GET ${base}/exchanges?`)) {
      return Response.json({
        exchanges: [
          { id: "X-1", route: "deliveries", start: "2026-12-06T10:00:00Z", durationMicros: 1500, status: "failed", errorType: "java.net.ConnectException" },
        ],
      });
    }
    if (key === `GET ${base}/exchanges/X-1`) {
      return Response.json({
        id: "X-1", route: "deliveries", start: "2026-12-06T10:00:00Z", durationMicros: 1500, status: "failed", replayable: true,
        errorType: "java.net.ConnectException", errorMessage: "Connection refused", stack: "java.net.ConnectException: Connection refused\n\tat ...",
        body: '{"id":"d-5","card":"****"}', headers: { CamelHttpMethod: "POST" },
        nodes: [
          { id: "map", type: "process", route: "deliveries", parent: -1, offsetMicros: 10, durationMicros: 100 },
          { id: "post", type: "to", label: "to[direct:post]", route: "deliveries", parent: -1, offsetMicros: 120, durationMicros: 1300, failed: true },
        ],
      });
    }
    if (key === `GET ${base}/exchanges/X-1/replays`) return Response.json({ original: { exchange: "X-1", failedAt: { node: "post", route: "deliveries" } }, replays: [] });
    if (key === `POST ${base}/exchanges/X-1/replay`) return Response.json({ id: "r1", exchange: "X-1", replay: "X-2", status: "completed" });
    return Response.json({ error: "no such path" }, { status: 404 });
  });
}

describe("Exchanges", () => {
  it("finds a failed exchange, shows its timeline, message and exception, and replays it", async () => {
    const calls: string[] = [];
    render(<Exchanges api={fakeApi(calls)} tenant="acme" />);
    await userEvent.selectOptions(screen.getByLabelText("Status"), "failed");
    await userEvent.click(screen.getByRole("button", { name: "Search" }));
    await userEvent.click(await screen.findByRole("button", { name: "X-1" }));
    const x = await screen.findByRole("region", { name: "Exchange X-1" });
    expect(calls.some((c) => c.includes("/exchanges?status=failed&limit=50"))).toBe(true);
    // The same search again asks again: what came since is listed.
    const asked = calls.filter((c) => c.includes("/exchanges?status=failed&limit=50")).length;
    await userEvent.click(screen.getByRole("button", { name: "Search" }));
    await waitFor(() => expect(calls.filter((c) => c.includes("/exchanges?status=failed&limit=50")).length).toBe(asked + 1));
    expect((await within(x).findByText("to[direct:post]")).closest("li")!.className).toBe("failed");
    expect(within(x).getByLabelText("Body").textContent).toBe('{"id":"d-5","card":"****"}');
    expect(within(x).getByText(/Exception: java.net.ConnectException: Connection refused/)).toBeTruthy();
    await userEvent.click(await within(x).findByRole("button", { name: "Replay at post" }));
    expect((await within(x).findByRole("status", { name: "Replay" })).textContent).toContain("Replay completed as X-2");
    expect(calls).toContain(`POST ${base}/exchanges/X-1/replay`);
  });

  it("replays an exchange edited: its body and headers as written", async () => {
    const bodies: Record<string, unknown> = {};
    render(<Exchanges api={fakeApi([], bodies)} tenant="acme" />);
    await userEvent.click(await screen.findByRole("button", { name: "X-1" }));
    const x = await screen.findByRole("region", { name: "Exchange X-1" });
    await userEvent.click(await within(x).findByRole("button", { name: "Edit and replay" }));
    const form = within(x).getByRole("form", { name: "Edit and replay" });
    expect((within(form).getByLabelText("Headers, one \"Name: value\" a line") as HTMLTextAreaElement).value).toBe("CamelHttpMethod: POST");
    await userEvent.clear(within(form).getByLabelText("Body"));
    await userEvent.type(within(form).getByLabelText("Body"), "fixed");
    await userEvent.click(within(form).getByRole("button", { name: "Replay edited" }));
    await within(x).findByRole("status", { name: "Replay" });
    expect(bodies[`POST ${base}/exchanges/X-1/replay`]).toEqual({ body: "fixed", headers: { CamelHttpMethod: "POST" } });
  });

  it("takes its filter from a link, and bulk-replays what it counted", async () => {
    const calls: string[] = [];
    const bodies: Record<string, unknown> = {};
    window.history.pushState(null, "", "/exchanges?env=dev&app=deliveries&node=post&status=failed");
    render(<Exchanges api={fakeApi(calls, bodies)} tenant="acme" />);
    await screen.findByRole("button", { name: "X-1" });
    expect(calls).toContain(`GET ${base}/exchanges?node=post&status=failed&limit=50`);
    const bulk = screen.getByRole("region", { name: "Bulk replay" });
    await userEvent.type(within(bulk).getByLabelText("Route"), "deliveries");
    await userEvent.click(within(bulk).getByRole("button", { name: "Replay all…" }));
    await within(bulk).findByText(/Replay 1 failed exchanges of deliveries, 10 a second/);
    await userEvent.click(within(bulk).getByRole("button", { name: "Start" }));
    const progress = await within(bulk).findByRole("group", { name: "Bulk replay progress" });
    await waitFor(() => expect(within(progress).getByTestId("bulk-counts").textContent).toMatch(/^1 of 1: 1 completed/));
    const started = bodies[`POST ${base}/bulk-replays`] as { route: string; status: string; rate: number; from: string };
    expect(started).toMatchObject({ route: "deliveries", status: "failed", rate: 10 });
    // What was counted is what is replayed: the same start.
    expect(calls.some((c) => c.startsWith(`GET ${base}/exchanges?route=deliveries&status=failed&limit=500&from=${encodeURIComponent(started.from)}`))).toBe(true);
    window.history.pushState(null, "", "/");
  });

  it("follows new exchanges on the newest page when asked", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      const calls: string[] = [];
      render(<Exchanges api={fakeApi(calls)} tenant="acme" />);
      await screen.findByRole("button", { name: "X-1" });
      const lists = () => calls.filter((c) => c.startsWith(`GET ${base}/exchanges?`)).length;
      const before = lists();
      await act(() => vi.advanceTimersByTimeAsync(6000));
      expect(lists()).toBe(before);
      await userEvent.click(screen.getByLabelText("Follow new ones"));
      await act(() => vi.advanceTimersByTimeAsync(6000));
      await waitFor(() => expect(lists()).toBeGreaterThan(before));
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("pieces", () => {
  it("builds the API's query", () => {
    expect(query({ route: "orders", node: "", status: "failed", from: "", to: "", q: " X-1 " }, "c2")).toBe("route=orders&status=failed&q=X-1&cursor=c2&limit=50");
    expect(query(fromURL("?env=dev&app=a&route=deliver&node=post&status=failed"))).toBe("route=deliver&node=post&status=failed&limit=50");
  });
  it("turns headers into lines and back", () => {
    const h = { "Delivery-Id": "d-3", Note: "a: b" };
    expect(parseHeaders(formatHeaders(h))).toEqual(h);
    expect(parseHeaders("\nX-Empty\n  Y :  1 \n")).toEqual({ "X-Empty": "", Y: "1" });
  });
  it("says durations", () => {
    expect(micros(850)).toBe("850 µs");
    expect(micros(1500)).toBe("1.5 ms");
    expect(micros(2_500_000)).toBe("2.50 s");
  });
  it("places each node's run on the exchange's span", () => {
    render(
      <Timeline
        x={{ id: "x", route: "r", start: "", status: "completed", durationMicros: 1000, nodes: [{ id: "a", type: "log", route: "r", parent: -1, offsetMicros: 500, durationMicros: 250 }] }}
      />,
    );
    const bar = document.querySelector<HTMLElement>("li[data-node='a'] .bar")!;
    expect(bar.style.marginLeft).toBe("50%");
    expect(bar.style.width).toBe("25%");
  });
});

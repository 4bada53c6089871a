import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { Api, type RouteView } from "../api";
import { Routes, figures, layout } from "./Routes";

const stats = (count: number, failures: number, p95 = 1200) => ({ count, failures, meanMicros: 900, p50Micros: 800, p95Micros: p95, p99Micros: 2000 });

// A route with a choice: its two branches side by side under it.
const choice: RouteView = {
  context: "camel-1",
  id: "orders",
  from: "timer:orders",
  stats: stats(10, 1),
  nodes: [
    { id: "from", type: "from", order: 0, stats: stats(10, 0) },
    { id: "choice1", type: "choice", order: 1, stats: stats(10, 0) },
    { id: "big", type: "when", parent: "choice1", order: 2, stats: stats(4, 0) },
    { id: "small", type: "otherwise", parent: "choice1", order: 3, stats: stats(6, 1) },
    { id: "log1", type: "log", order: 4, stats: stats(9, 0) },
  ],
  edges: [
    ["from", "choice1"],
    ["choice1", "big"],
    ["choice1", "small"],
    ["big", "log1"],
    ["small", "log1"],
    ["log1", "from"], // a back edge: left out of the layers
  ],
};

describe("layout", () => {
  it("puts each node one layer below what leads to it, branches side by side", () => {
    const { placed, width, height } = layout(choice);
    const y = (id: string) => placed.get(id)!.y;
    expect(y("from")).toBe(0);
    expect(y("choice1")).toBeGreaterThan(y("from"));
    expect(y("big")).toBe(y("small"));
    expect(placed.get("big")!.x).toBeLessThan(placed.get("small")!.x);
    expect(y("log1")).toBeGreaterThan(y("big"));
    expect(width).toBeGreaterThan(2 * 190);
    expect(height).toBe(y("log1") + 58);
  });
  it("places nodes no edge reaches, and survives a cycle", () => {
    const r: RouteView = { ...choice, edges: [["a", "b"], ["b", "a"]], nodes: [
      { id: "a", order: 0, stats: stats(1, 0) },
      { id: "b", order: 1, stats: stats(1, 0) },
      { id: "c", parent: "b", order: 2, stats: stats(1, 0) },
    ] };
    const { placed } = layout(r);
    expect(placed.size).toBe(3);
    expect(placed.get("b")!.y).toBeGreaterThan(placed.get("a")!.y);
    expect(placed.get("c")!.y).toBeGreaterThan(placed.get("b")!.y);
  });
});

describe("figures", () => {
  it("says count, error rate and p95", () => {
    expect(figures(stats(6, 2, 1500))).toBe("6 · 33 % failed · p95 1.5 ms");
    expect(figures(stats(1000, 3, 800))).toBe("1000 · 0.3 % failed · p95 800 µs");
    expect(figures(stats(0, 0))).toBe("0 · 0 % failed · p95 1.2 ms");
  });
});

// A control plane with one app of one route (stand-in answers, shaped as
// the API's).
function fakeApi(calls: string[]) {
  return new Api("t", async (url, init) => {
    const key = `${init?.method ?? "GET"} ${String(url)}`;
    calls.push(key);
    const base = "/api/v1/tenants/acme/environments/dev/apps/shop";
    if (key === "GET /api/v1/tenants/acme/environments") return Response.json([{ name: "dev", created: "", env: {}, secrets: [] }]);
    if (key === "GET /api/v1/tenants/acme/environments/dev/apps") return Response.json([{ name: "shop", environment: "dev", replicas: 1, phase: "running" }]);
    if (key === `GET ${base}/routes?window=1h` || key === `GET ${base}/routes?window=5m`) return Response.json([choice]);
    if (key.startsWith(`GET ${base}/series?`)) {
      return Response.json([
        { time: "2026-12-06T10:00:00Z", count: 60, failures: 6, throughput: 1, errorRate: 0.1 },
        { time: "2026-12-06T10:01:00Z", count: 120, failures: 0, throughput: 2, errorRate: 0 },
      ]);
    }
    return Response.json({ error: "no such path: " + String(url) }, { status: 404 });
  });
}

describe("Routes", () => {
  it("draws each route with its nodes' figures, charts, and opens a node's failures", async () => {
    const calls: string[] = [];
    const opened: string[] = [];
    render(<Routes api={fakeApi(calls)} tenant="acme" onOpen={(p) => opened.push(p)} />);
    const route = await screen.findByRole("region", { name: "Route orders" });
    const small = await within(route).findByRole("button", { name: "otherwise otherwise small 6 · 17 % failed · p95 1.2 ms, open its failed exchanges" });
    expect(within(route).getAllByRole("button", { name: /^(from|choice|when|otherwise|log)/ })).toHaveLength(5);
    await waitFor(() => expect(screen.getByRole("figure", { name: "shop: throughput and error rate" }).textContent).toContain("up to 2.00/s"));
    expect(calls).toContain("GET /api/v1/tenants/acme/environments/dev/apps/shop/series?window=1h&step=1m");
    expect(calls).toContain("GET /api/v1/tenants/acme/environments/dev/apps/shop/series?route=orders&window=1h&step=1m");
    await userEvent.click(small);
    expect(opened).toEqual(["/exchanges?env=dev&app=shop&status=failed&node=small"]);
    await userEvent.click(within(route).getByRole("button", { name: "its failed exchanges" }));
    expect(opened[1]).toBe("/exchanges?env=dev&app=shop&status=failed&route=orders");
    await userEvent.selectOptions(screen.getByLabelText("Window"), "5m");
    await waitFor(() => expect(calls).toContain("GET /api/v1/tenants/acme/environments/dev/apps/shop/routes?window=5m"));
  });
});

import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { vi } from "vitest";
import { Api } from "../api";
import { Runners } from "./Runners";

// A control plane answering as the API does: two runners, a token made on
// POST.
function fakeApi(calls: string[]) {
  return new Api("t", async (url, init) => {
    const key = `${init?.method ?? "GET"} ${String(url)}`;
    calls.push(key);
    if (key === "GET /api/v1/tenants/acme/runners") {
      return Response.json([
        { id: "r1", name: "edge-1", connected: true, connectedSince: new Date(Date.now() - 120_000).toISOString(), version: "v1.2.0", certificateExpiry: "2027-12-01T00:00:00Z" },
        { id: "r2", name: "edge-2", connected: false, lastSeen: "2026-12-01T00:00:00Z", certificateExpiry: "2027-12-01T00:00:00Z" },
      ]);
    }
    if (key === "GET /api/v1/tenants/acme/runners/r1/proxy/status") {
      return Response.json({
        runnerId: "r1", name: "edge-1", version: "v1.2.0", hostname: "c1", engine: true, orchestrator: "kubernetes", since: "2026-12-06T10:00:00Z",
        node: {
          ready: false, since: "2026-12-06T10:00:00Z", role: "controller", node: { type: "Ready", status: "True" },
          components: [{ name: "kine", state: "running", ready: true, restarts: 0 }, { name: "traefik", state: "starting", ready: false, restarts: 2 }],
          nodes: [
            { name: "c1", role: "controller", ip: "10.0.0.1", ready: "True", version: "v1.34.1" },
            { name: "w1", role: "worker", ip: "10.0.0.2", ready: "Unknown", version: "v1.34.1", unschedulable: true },
          ],
        },
      });
    }
    if (key === "POST /api/v1/tenants/acme/runners/r1/upgrade") {
      return Response.json({ error: "this runner runs no node of its own to upgrade (--no-engine, or Docker)" }, { status: 501 });
    }
    if (key === "GET /api/v1/tenants/acme/runners/r1/support-bundle") {
      return new Response(new Uint8Array(2048), { headers: { "Content-Disposition": 'attachment; filename="cameleer-support-20261206.tar.gz"' } });
    }
    if (key === "POST /api/v1/tenants/acme/runner-tokens") {
      return Response.json(
        { token: "cmlr1.x", expires: "2026-12-07T00:00:00Z", command: "cameleer token redeem cmlr1.x", install: "curl -sfL https://cp/install.sh | sh -s - --token cmlr1.x" },
        { status: 201 },
      );
    }
    return Response.json({ error: "no such path: " + String(url) }, { status: 404 });
  });
}

describe("Runners", () => {
  it("lists runners with their state and shows the install command of a new token", async () => {
    const calls: string[] = [];
    render(<Runners api={fakeApi(calls)} tenant="acme" />);
    const row1 = (await screen.findByText("edge-1")).closest("tr")!;
    expect(within(row1).getByText("connected")).toBeTruthy();
    expect(within(row1).getByText("since 2 min ago")).toBeTruthy();
    expect(within(row1).getByText("v1.2.0")).toBeTruthy();
    const row2 = screen.getByText("edge-2").closest("tr")!;
    expect(within(row2).getByText(/not connected · last seen/)).toBeTruthy();

    await userEvent.click(screen.getByRole("button", { name: "Add a runner" }));
    await waitFor(() => expect(screen.getByTestId("install-command").textContent).toBe("curl -sfL https://cp/install.sh | sh -s - --token cmlr1.x"));
    expect(calls).toContain("POST /api/v1/tenants/acme/runner-tokens");
  });

  it("shows a runner's engine health and the nodes of its cluster", async () => {
    render(<Runners api={fakeApi([])} tenant="acme" />);
    await userEvent.click(await screen.findByRole("button", { name: "edge-1" }));
    const d = await screen.findByRole("region", { name: "Runner edge-1" });
    expect((await within(d).findByTestId("engine-health")).textContent).toBe("not ready");
    expect(within(d).getByRole("list", { name: "Components" }).textContent).toContain("traefik: starting (2 restarts)");
    const w1 = within(d).getByRole("table", { name: "Nodes of the cluster" }).querySelector("tr[data-node='w1']")!;
    expect(w1.textContent).toBe("w1worker10.0.0.2Unknownv1.34.1drained");
  });

  it("downloads a runner's support bundle, and says why an upgrade is refused", async () => {
    const calls: string[] = [];
    vi.spyOn(window, "confirm").mockReturnValue(true);
    URL.createObjectURL = vi.fn(() => "blob:x");
    URL.revokeObjectURL = vi.fn();
    render(<Runners api={fakeApi(calls)} tenant="acme" />);
    await userEvent.click(await screen.findByRole("button", { name: "edge-1" }));
    const d = await screen.findByRole("region", { name: "Runner edge-1" });
    await userEvent.click(within(d).getByRole("button", { name: "Download a support bundle" }));
    expect((await within(d).findByRole("status")).textContent).toBe("Support bundle cameleer-support-20261206.tar.gz downloaded (2 KB).");
    await userEvent.click(within(d).getByRole("button", { name: "Upgrade" }));
    expect((await within(d).findByRole("alert")).textContent).toContain("runs no node of its own");
    expect(calls).toContain("POST /api/v1/tenants/acme/runners/r1/upgrade");
  });

  it("shows the API's error in one line", async () => {
    const api = new Api("t", async () => Response.json({ error: "tenant acme: not yours" }, { status: 403 }));
    render(<Runners api={api} tenant="acme" />);
    expect((await screen.findByRole("alert")).textContent).toBe("tenant acme: not yours");
  });
});

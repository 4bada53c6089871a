import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { Api } from "../api";
import { Audit, shortAction } from "./Audit";

// A log of 60 records (stand-in answers, as the API pages them newest
// first).
function fakeApi(calls: string[]) {
  const recs = Array.from({ length: 60 }, (_, i) => ({
    id: i + 1,
    time: "2026-12-06T10:00:00Z",
    token: "tok1",
    role: i === 59 ? "admin" : "operator",
    action: "POST /api/v1/tenants/{tenant}/environments/{env}/apps/{app}/exchanges/{id}/replay",
    path: `/api/v1/tenants/acme/environments/dev/apps/a/exchanges/X-${i + 1}/replay`,
    status: i === 58 ? 403 : 200,
    detail: i === 59 ? { exchange: "X-60", edited: "true", outcome: "completed" } : { exchange: `X-${i + 1}` },
  }));
  return new Api("t", async (url) => {
    calls.push(String(url));
    const u = new URL(String(url), "https://cp");
    if (u.pathname !== "/api/v1/tenants/acme/audit" || u.searchParams.get("order") !== "newest") return Response.json({ error: "no" }, { status: 404 });
    const before = Number(u.searchParams.get("before") ?? "0") || 61;
    const limit = Number(u.searchParams.get("limit"));
    return Response.json(recs.filter((r) => r.id < before).reverse().slice(0, limit));
  });
}

describe("Audit", () => {
  it("lists the newest first, fifty a page, with each record's detail", async () => {
    const calls: string[] = [];
    render(<Audit api={fakeApi(calls)} tenant="acme" />);
    const first = (await screen.findAllByRole("row"))[1];
    expect(first.getAttribute("data-audit")).toBe("60");
    expect(within(first).getByText(/edited=true/)).toBeTruthy();
    expect(first.textContent).toContain("POST /environments/{env}/apps/{app}/exchanges/{id}/replay/api/v1/tenants/acme/");
    expect(screen.getAllByRole("row")).toHaveLength(51);
    await userEvent.click(screen.getByRole("button", { name: "Older" }));
    expect((await screen.findAllByRole("row")).length).toBeLessThan(51);
    expect(calls).toContain("/api/v1/tenants/acme/audit?order=newest&limit=50&before=11");
    expect(screen.getAllByRole("row")[1].getAttribute("data-audit")).toBe("10");
    await userEvent.click(screen.getByRole("button", { name: "Newer" }));
    expect((await screen.findAllByRole("row"))[1].getAttribute("data-audit")).toBe("60");
  });
  it("shortens actions to what follows the tenant", () => {
    expect(shortAction("POST /api/v1/tenants/{tenant}/environments")).toBe("POST /environments");
  });
});

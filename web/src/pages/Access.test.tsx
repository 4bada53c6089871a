import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { vi } from "vitest";
import { Api } from "../api";
import { Access } from "./Access";

// The answers of a control plane with one token; what is sent is kept.
function fakeApi(sent: Record<string, unknown>) {
  const tokens = [{ id: "t1", role: "operator", created: "2026-12-06T10:00:00Z" }];
  return new Api("t", async (url, init) => {
    const key = `${init?.method ?? "GET"} ${String(url)}`;
    sent[key] = init?.body ? JSON.parse(String(init.body)) : true;
    if (key === "GET /api/v1/tenants/acme/api-tokens") return Response.json(tokens);
    if (key === "POST /api/v1/tenants/acme/api-tokens") {
      tokens.push({ id: "t2", role: "admin", created: "2026-12-06T11:00:00Z" });
      return Response.json({ token: "cmla_secret", id: "t2", tenant: "acme", role: "admin" }, { status: 201 });
    }
    if (key === "DELETE /api/v1/tenants/acme/api-tokens/t1") {
      tokens.splice(0, 1);
      return new Response(null, { status: 204 });
    }
    if (key === "PUT /api/v1/tenants/acme/retention") return Response.json({ error: "this needs the control plane's admin token" }, { status: 403 });
    return Response.json({ error: "no such path" }, { status: 404 });
  });
}

describe("Access", () => {
  it("makes a token shown once, revokes one, and says a refusal in one line", async () => {
    const sent: Record<string, unknown> = {};
    vi.spyOn(window, "confirm").mockReturnValue(true);
    render(<Access api={fakeApi(sent)} tenant={{ name: "acme", tier: "mid", retentionDays: 30 }} onChanged={() => undefined} />);
    const tokens = screen.getByRole("region", { name: "API tokens" });
    await within(tokens).findByText("t1");
    await userEvent.selectOptions(within(tokens).getByLabelText("Role"), "admin");
    await userEvent.click(within(tokens).getByRole("button", { name: "Make a token" }));
    expect((await within(tokens).findByTestId("new-token")).textContent).toBe("cmla_secret");
    expect(sent["POST /api/v1/tenants/acme/api-tokens"]).toEqual({ role: "admin" });
    await within(tokens).findByText("t2");
    await userEvent.click(within(tokens).getByRole("button", { name: "Revoke token t1" }));
    await within(tokens).findByText("t2");
    expect(within(tokens).queryByText("t1")).toBeNull();

    const retention = screen.getByRole("region", { name: "Telemetry retention" });
    expect((within(retention).getByLabelText("Days kept") as HTMLInputElement).value).toBe("30");
    await userEvent.clear(within(retention).getByLabelText("Days kept"));
    await userEvent.type(within(retention).getByLabelText("Days kept"), "14");
    await userEvent.click(within(retention).getByRole("button", { name: "Set" }));
    expect((await screen.findByRole("alert")).textContent).toBe("this needs the control plane's admin token");
    expect(sent["PUT /api/v1/tenants/acme/retention"]).toEqual({ days: 14 });
  });
});

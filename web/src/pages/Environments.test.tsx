import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { Api } from "../api";
import { Environments } from "./Environments";
import { ruleNumbers } from "./Egress";

// A control plane's answers for one environment with a value and a
// secret; what the page PUTs is kept.
function fakeApi(puts: unknown[]) {
  return new Api("t", async (url, init) => {
    const key = `${init?.method ?? "GET"} ${String(url)}`;
    if (key === "GET /api/v1/tenants/acme/environments") {
      return Response.json([{ name: "prod", created: "2026-12-01T00:00:00Z", env: { GREETING: "hello" }, secrets: ["API_TOKEN"] }]);
    }
    if (key === "PUT /api/v1/tenants/acme/environments/prod/config") {
      const body = JSON.parse(String(init?.body));
      puts.push(body);
      return Response.json({ name: "prod", created: "2026-12-01T00:00:00Z", env: body.env, secrets: [...body.keepSecrets, ...Object.keys(body.secrets)].sort() });
    }
    if (key === "GET /api/v1/tenants/acme/environments/prod/egress") return Response.json({ allow: [{ host: "api.partner.example", ports: [443], protocol: "tcp" }] });
    if (key === "PUT /api/v1/tenants/acme/environments/prod/egress") {
      const body = JSON.parse(String(init?.body));
      puts.push(body);
      if (body.allow.some((r: { ports: number[] }) => r.ports.some((p) => p > 65535))) {
        return Response.json({ error: "allow[1]: port 70000 is out of range 1-65535" }, { status: 400 });
      }
      return Response.json(body);
    }
    if (key === "POST /api/v1/tenants/acme/environments") {
      return Response.json({ error: 'tier mid allows only the environments dev, prod; "qa" needs a higher tier' }, { status: 403 });
    }
    return Response.json({ error: "no such path" }, { status: 404 });
  });
}

describe("Environments", () => {
  it("shows values, never secrets, and keeps a secret it was not given when the values change", async () => {
    const puts: unknown[] = [];
    render(<Environments api={fakeApi(puts)} tenant={{ name: "acme", tier: "mid" }} />);
    expect(screen.getByText(/two environments: dev and prod/)).toBeTruthy();
    const prod = await screen.findByRole("region", { name: "prod" });
    expect((within(prod).getByLabelText("Value of GREETING in prod") as HTMLInputElement).value).toBe("hello");
    expect(within(prod).getByText("secret, set")).toBeTruthy();

    await userEvent.clear(within(prod).getByLabelText("Value of GREETING in prod"));
    await userEvent.type(within(prod).getByLabelText("Value of GREETING in prod"), "hi");
    await userEvent.click(within(prod).getByRole("button", { name: "Set a secret" }));
    await userEvent.type(within(prod).getByLabelText("Name of new secret 1 in prod"), "DB_PASSWORD");
    await userEvent.type(within(prod).getByLabelText("Value of new secret DB_PASSWORD in prod"), "pw");
    await userEvent.click(within(prod).getByRole("button", { name: "Save prod" }));
    await within(prod).findByRole("status");
    expect(puts).toEqual([{ env: { GREETING: "hi" }, secrets: { DB_PASSWORD: "pw" }, keepSecrets: ["API_TOKEN"] }]);
    // The secret just set is a name now, its value gone from the page.
    expect(within(prod).queryByDisplayValue("pw")).toBeNull();
    expect(within(prod).getAllByText("secret, set")).toHaveLength(2);
  });

  it("edits the egress: an address becomes a /32, a host stays a host, a refusal is one line", async () => {
    const puts: unknown[] = [];
    render(<Environments api={fakeApi(puts)} tenant={{ name: "acme", tier: "mid" }} />);
    const egress = await screen.findByRole("group", { name: "Egress of prod" });
    expect(((await within(egress).findByLabelText("Destination of rule 1 in prod")) as HTMLInputElement).value).toBe("api.partner.example");
    await userEvent.click(within(egress).getByRole("button", { name: "Add a rule" }));
    await userEvent.type(within(egress).getByLabelText("Destination of rule 2 in prod"), "10.20.30.40");
    await userEvent.type(within(egress).getByLabelText("Ports of rule 2 in prod"), "514, 70000");
    await userEvent.selectOptions(within(egress).getByLabelText("Protocol of rule 2 in prod"), "udp");
    await userEvent.click(within(egress).getByRole("button", { name: "Save egress of prod" }));
    expect((await within(egress).findByRole("alert")).textContent).toBe("rule 2: port 70000 is out of range 1-65535");
    await userEvent.clear(within(egress).getByLabelText("Ports of rule 2 in prod"));
    await userEvent.type(within(egress).getByLabelText("Ports of rule 2 in prod"), "514");
    await userEvent.click(within(egress).getByRole("button", { name: "Save egress of prod" }));
    await within(egress).findByRole("status");
    expect(puts[1]).toEqual({
      allow: [
        { host: "api.partner.example", ports: [443], protocol: "tcp" },
        { cidr: "10.20.30.40/32", ports: [514], protocol: "udp" },
      ],
    });
  });

  it("says the tier's refusal in one line", async () => {
    render(<Environments api={fakeApi([])} tenant={{ name: "acme", tier: "mid" }} />);
    await userEvent.type(screen.getByLabelText("New environment"), "qa");
    await userEvent.click(screen.getByRole("button", { name: "Create" }));
    expect((await screen.findByRole("alert")).textContent).toContain("needs a higher tier");
  });
});

describe("ruleNumbers", () => {
  it("says the control plane's allow[i] as the page's rule i+1", () => {
    expect(ruleNumbers('allow[0]: cidr "10.1.2.3/24" has bits set past its prefix length')).toBe('rule 1: cidr "10.1.2.3/24" has bits set past its prefix length');
    expect(ruleNumbers("more than 100 rules")).toBe("more than 100 rules");
  });
});

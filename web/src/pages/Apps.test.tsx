import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { Api, ApiError } from "../api";
import { Apps, History, Logs, Phases, shortImage } from "./Apps";

// An API with one environment and no app; uploads refused as the
// control plane refuses a JAR that is not one.
class FakeApi extends Api {
  constructor() {
    super("t", async (url, init) => {
      const key = `${init?.method ?? "GET"} ${String(url)}`;
      if (key === "GET /api/v1/tenants/acme/environments") return Response.json([{ name: "dev", created: "", env: {}, secrets: [] }]);
      if (key === "GET /api/v1/tenants/acme/environments/dev/apps") return Response.json([]);
      return Response.json({ error: "no such path" }, { status: 404 });
    });
  }
  override upload<T>(_path: string, _file: Blob, onProgress: (s: number) => void): Promise<T> {
    onProgress(0.5);
    return Promise.reject(new ApiError(415, "the upload is not a ZIP/JAR file: zip: not a valid zip file"));
  }
}

describe("Apps", () => {
  it("says why an upload was refused, where the upload is", async () => {
    render(<Apps api={new FakeApi()} tenant="acme" />);
    const form = await screen.findByRole("form", { name: "Deploy a JAR" });
    await userEvent.type(within(form).getByLabelText("App"), "orders");
    await userEvent.upload(within(form).getByLabelText("JAR"), new File(["not a jar"], "orders.jar"));
    await userEvent.click(within(form).getByRole("button", { name: "Upload and deploy" }));
    expect((await within(form).findByRole("alert")).textContent).toBe("the upload is not a ZIP/JAR file: zip: not a valid zip file");
  });

  it("draws a deployment's phases", () => {
    const { rerender } = render(<Phases d={{ id: "d1", app: "a", environment: "dev", replicas: 1, phase: "pushing" }} />);
    expect(screen.getByText("pushing").getAttribute("aria-current")).toBe("step");
    expect(screen.getByText("building").className).toBe("done");
    rerender(<Phases d={{ id: "d1", app: "a", environment: "dev", replicas: 1, phase: "failed", reason: "image build: no Main-Class" }} />);
    expect(screen.getByText("failed: image build: no Main-Class")).toBeTruthy();
  });

  it("shortens an image to its digest", () => {
    expect(shortImage("cameleer.local/acme/dev/orders@sha256:0123456789abcdef0123")).toBe("sha256:0123456789ab…");
    expect(shortImage(undefined)).toBe("—");
  });
});

// A log stream that sends the lines it is given, when it is told to.
class LogApi extends Api {
  push: (l: string) => void = () => {};
  constructor() {
    super("t");
  }
  override follow(_path: string, _signal: AbortSignal, onLine: (l: string) => void): Promise<void> {
    this.push = onLine;
    return new Promise(() => {});
  }
}

describe("Logs", () => {
  it("follows, holds lines while paused, and searches", async () => {
    const api = new LogApi();
    render(<Logs api={api} path="/x/logs" />);
    const box = screen.getByLabelText("Log lines");
    act(() => {
      api.push("orders served /a");
      api.push("GREETING=hello-dev");
    });
    await waitFor(() => expect(box.textContent).toBe("orders served /a\nGREETING=hello-dev"));
    await userEvent.click(screen.getByRole("button", { name: "Pause" }));
    act(() => api.push("orders served /b"));
    await waitFor(() => expect(screen.getByText(/1 held/)).toBeTruthy());
    expect(box.textContent).not.toContain("/b");
    await userEvent.click(screen.getByRole("button", { name: "Resume" }));
    await waitFor(() => expect(box.textContent).toContain("orders served /b"));
    await userEvent.type(screen.getByLabelText("Search"), "served");
    expect(box.textContent).toBe("orders served /a\norders served /b");
  });
});

describe("History", () => {
  it("lists an app's deployments, newest first, what each deployed", async () => {
    const api = new Api("t", async () =>
      Response.json([
        { id: "d1", app: "orders", environment: "prod", replicas: 1, phase: "running", artifact: "0123456789abcdef", created: "2026-12-06T10:00:00Z" },
        { id: "d2", app: "orders", environment: "prod", replicas: 1, phase: "failed", reason: "no Main-Class", promotedFrom: "dev", created: "2026-12-06T11:00:00Z" },
        { id: "d3", app: "billing", environment: "prod", replicas: 1, phase: "running", created: "2026-12-06T12:00:00Z" },
      ]),
    );
    render(<History api={api} envPath="/api/v1/tenants/acme/environments/prod" app="orders" />);
    await screen.findByText("Deployments (2)");
    const rows = within(screen.getByRole("table", { name: "Deployments of orders" })).getAllByRole("row");
    expect(rows[1].getAttribute("data-deployment")).toBe("d2");
    expect(rows[1].textContent).toContain("promoted from dev");
    expect(rows[2].textContent).toContain("upload 0123456789ab");
  });
});

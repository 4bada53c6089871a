import { Api, ApiError, errorLine } from "./api";

describe("errorLine", () => {
  it("reads the API's error", () => {
    expect(errorLine(409, '{"error":"a deployment of app x is under way"}')).toBe("a deployment of app x is under way");
  });
  it("says what came instead, in one line", () => {
    expect(errorLine(502, "<html>\n<body>Bad Gateway</body>")).toBe("502: <html>");
    expect(errorLine(500, "")).toBe("the control plane answered 500");
  });
});

describe("Api", () => {
  it("sends the token as a bearer and JSON bodies", async () => {
    const seen: { url: string; init?: RequestInit }[] = [];
    const api = new Api("cmla_x", async (url, init) => {
      seen.push({ url: String(url), init });
      return new Response('{"ok":true}', { status: 200 });
    });
    expect(await api.call("POST", "/api/v1/tenants", { name: "acme" })).toEqual({ ok: true });
    const h = seen[0].init?.headers as Record<string, string>;
    expect(h.Authorization).toBe("Bearer cmla_x");
    expect(h["Content-Type"]).toBe("application/json");
    expect(seen[0].init?.body).toBe('{"name":"acme"}');
  });
  it("turns an error answer into an ApiError with its line", async () => {
    const api = new Api("t", async () => new Response('{"error":"no such tenant"}', { status: 404 }));
    await expect(api.get("/api/v1/tenants/x")).rejects.toEqual(new ApiError(404, "no such tenant"));
  });
  it("says when the control plane cannot be reached", async () => {
    const api = new Api("t", async () => {
      throw new TypeError("Failed to fetch");
    });
    await expect(api.get("/api/v1/tenants")).rejects.toThrow("the control plane cannot be reached (Failed to fetch)");
  });
});

// The control plane's API as the console calls it: same origin, the
// token as a bearer, every error turned into one line (ApiError).

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

// errorLine reads the API's error answer ({"error": "..."}) or says what
// came instead, in one line.
export function errorLine(status: number, body: string): string {
  try {
    const v = JSON.parse(body) as { error?: unknown };
    if (typeof v.error === "string" && v.error !== "") return v.error;
  } catch {
    // not JSON: said below
  }
  const text = body.trim().split("\n")[0];
  return text !== "" ? `${status}: ${text.slice(0, 200)}` : `the control plane answered ${status}`;
}

export class Api {
  constructor(
    private readonly token: string,
    private readonly fetcher: typeof fetch = (input, init) => fetch(input, init),
  ) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let resp: Response;
    try {
      resp = await this.fetcher(path, {
        method,
        headers: {
          Authorization: `Bearer ${this.token}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, `the control plane cannot be reached (${e instanceof Error ? e.message : String(e)})`);
    }
    const text = await resp.text();
    if (!resp.ok) throw new ApiError(resp.status, errorLine(resp.status, text));
    return (text === "" ? undefined : JSON.parse(text)) as T;
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>("GET", path);
  }
}

export interface Tenant {
  name: string;
  tier: string;
}

export interface Environment {
  name: string;
  created: string;
  env: Record<string, string>;
  // Secret names: the values are never shown.
  secrets: string[];
}

export interface Runner {
  id: string;
  name: string;
  connected: boolean;
  lastSeen?: string;
  version?: string;
  certificateExpiry: string;
  revoked?: boolean;
}

export interface RunnerToken {
  token: string;
  expires: string;
  command: string;
  install?: string;
}

export const tenantPath = (tenant: string) => `/api/v1/tenants/${encodeURIComponent(tenant)}`;

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

  // download answers a file the API serves, with the name it gives
  // (Content-Disposition) or fallback.
  async download(path: string, fallback: string): Promise<{ blob: Blob; name: string }> {
    let resp: Response;
    try {
      resp = await this.fetcher(path, { headers: { Authorization: `Bearer ${this.token}` } });
    } catch (e) {
      throw new ApiError(0, `the control plane cannot be reached (${e instanceof Error ? e.message : String(e)})`);
    }
    if (!resp.ok) throw new ApiError(resp.status, errorLine(resp.status, await resp.text()));
    const name = resp.headers.get("Content-Disposition")?.match(/filename="([^"]+)"/)?.[1] ?? fallback;
    return { blob: await resp.blob(), name };
  }

  // upload sends file as the multipart form the artifacts API takes,
  // telling onProgress how much of it went (0 to 1). XMLHttpRequest, not
  // fetch: only it reports an upload's progress.
  upload<T>(path: string, file: Blob, onProgress: (share: number) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      xhr.setRequestHeader("Authorization", `Bearer ${this.token}`);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText) as T);
        else reject(new ApiError(xhr.status, errorLine(xhr.status, xhr.responseText)));
      };
      xhr.onerror = () => reject(new ApiError(0, "the upload was cut: the control plane cannot be reached"));
      const form = new FormData();
      form.append("file", file);
      xhr.send(form);
    });
  }

  // follow streams a text answer line by line to onLine until signal
  // aborts; it resolves when the answer ends.
  async follow(path: string, signal: AbortSignal, onLine: (line: string) => void): Promise<void> {
    const resp = await this.fetcher(path, { headers: { Authorization: `Bearer ${this.token}` }, signal });
    if (!resp.ok) throw new ApiError(resp.status, errorLine(resp.status, await resp.text()));
    const reader = resp.body!.pipeThrough(new TextDecoderStream()).getReader();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const lines = (rest + value).split("\n");
      rest = lines.pop() ?? "";
      lines.forEach(onLine);
    }
    if (rest !== "") onLine(rest);
  }
}

export interface Tenant {
  name: string;
  tier: string;
  retentionDays?: number;
}

export interface Environment {
  name: string;
  created: string;
  env: Record<string, string>;
  // Secret names: the values are never shown.
  secrets: string[];
}

export type Phase = "validating" | "building" | "pushing" | "rolling-out" | "running" | "failed";

export interface App {
  name: string;
  environment: string;
  deployment?: string;
  artifact?: string;
  image?: string;
  replicas: number;
  phase: Phase;
  reason?: string;
  url?: string;
  running?: string;
  updated?: string;
}

export interface Deployment {
  id: string;
  app: string;
  environment: string;
  artifact?: string;
  image?: string;
  promotedFrom?: string;
  created?: string;
  replicas: number;
  phase: Phase;
  reason?: string;
  url?: string;
}

export interface AppStatus {
  name: string;
  phase: Phase;
  image?: string;
  url?: string;
  running?: string;
  connected: boolean;
  live?: {
    image: string;
    replicas: number;
    ready: number;
    jvm?: { agentVersion?: string; javaVersion?: string; vmName?: string; heapUsedBytes?: number; uptimeMillis?: number };
  };
}

export interface Artifact {
  sha256: string;
  size: number;
  mainClass?: string;
  springBoot?: boolean;
}

export interface ExchangeSummary {
  id: string;
  route: string;
  from?: string;
  correlation?: string;
  start: string;
  durationMicros: number;
  status: "completed" | "failed" | "handled";
  redeliveries?: number;
  errorType?: string;
  errorMessage?: string;
  nodeCount?: number;
}

export interface NodeRun {
  id: string;
  type: string;
  label?: string;
  route: string;
  parent: number;
  exchange?: string;
  offsetMicros: number;
  durationMicros: number;
  failed?: boolean;
}

export interface ExchangeDetail extends ExchangeSummary {
  replayOf?: string;
  replayable?: boolean;
  body?: string;
  bodySize?: number;
  bodyTruncated?: boolean;
  headers?: Record<string, string>;
  stack?: string;
  nodes?: NodeRun[];
  correlated?: ExchangeSummary[];
}

export interface Original {
  exchange: string;
  failedAt?: { node: string; route: string };
  until?: string;
  evicted?: string;
}

export interface Replay {
  id: string;
  exchange: string;
  replay?: string;
  status: "running" | "completed" | "failed" | "handled" | "error";
  error?: string;
  warning?: string;
}

export interface Runner {
  id: string;
  name: string;
  connected: boolean;
  connectedSince?: string;
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

// Aggregate is what ran over a window; percentiles are the upper bound of
// the histogram bucket they fall in.
export interface Aggregate {
  count: number;
  failures: number;
  meanMicros: number;
  p50Micros: number;
  p95Micros: number;
  p99Micros: number;
}

export interface RouteNode {
  id: string;
  type?: string;
  label?: string;
  parent?: string;
  order: number;
  stats: Aggregate;
}

// RouteView is one route of an app: its model (nodes in the route's order,
// edges as pairs of node ids) with its figures over the window asked.
export interface RouteView {
  context: string;
  id: string;
  from: string;
  description?: string;
  stats: Aggregate;
  nodes: RouteNode[];
  edges: [string, string][];
}

// Point is one step of a series.
export interface Point {
  time: string;
  count: number;
  failures: number;
  throughput: number;
  errorRate: number;
}

export interface Bulk {
  id: string;
  route: string;
  status: string;
  from: string;
  to: string;
  rate: number;
  state: "running" | "paused" | "cancelled" | "done";
  completed: number;
  failed: number;
  skipped: number;
  errors: number;
  lastError?: string;
  created: string;
  updated: string;
}

export interface AuditRecord {
  id: number;
  time: string;
  token: string;
  role: string;
  action: string;
  path: string;
  status: number;
  detail?: Record<string, string>;
}

// RunnerStatus is what a runner says of itself through its tunnel (GET
// .../runners/{id}/proxy/status); node is its engine's, when it runs one.
export interface RunnerStatus {
  runnerId: string;
  name: string;
  version: string;
  hostname: string;
  engine: boolean;
  orchestrator?: string;
  since: string;
  node?: {
    ready: boolean;
    since: string;
    role: string;
    node?: { type: string; status: string; reason?: string; message?: string };
    components: { name: string; state: string; ready: boolean; restarts: number; message?: string }[];
    lastUpgrade?: { from: string; to: string; started: string; finished?: string; result: string; reason?: string };
    nodes?: { name: string; role: string; ip: string; ready: string; version: string; unschedulable?: boolean }[];
  };
}

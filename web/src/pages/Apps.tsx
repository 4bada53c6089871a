import { useEffect, useRef, useState, type FormEvent } from "react";
import { Api, tenantPath, type App, type AppStatus, type Artifact, type Deployment, type Environment, type Phase } from "../api";
import { ago, ErrorLine, Head, useLoad } from "../ui";

// The order a deployment goes through, as the runner reports it.
const phases: Phase[] = ["validating", "building", "pushing", "rolling-out", "running"];

// Apps: an environment's apps with their state; deploy a JAR (uploaded
// with its progress shown, then followed phase by phase); one app's
// status, operations, promotion and live logs.
export function Apps({ api, tenant }: { api: Api; tenant: string }) {
  const envs = useLoad(() => api.get<Environment[]>(`${tenantPath(tenant)}/environments`), [api, tenant]);
  const [envName, setEnvName] = useState<string>();
  const env = envName ?? envs.data?.[0]?.name;
  const envPath = env ? `${tenantPath(tenant)}/environments/${encodeURIComponent(env)}` : undefined;
  const apps = useLoad(() => (envPath ? api.get<App[]>(`${envPath}/apps`) : Promise.resolve([])), [api, envPath], 5000);
  const [selected, setSelected] = useState<string>();

  return (
    <section aria-labelledby="apps-title">
      <header className="page-head">
        <h2 id="apps-title">Apps</h2>
        <label>
          Environment{" "}
          <select value={env ?? ""} onChange={(e) => (setEnvName(e.target.value), setSelected(undefined))}>
            {(envs.data ?? []).map((e) => (
              <option key={e.name}>{e.name}</option>
            ))}
          </select>
        </label>
      </header>
      <ErrorLine error={envs.error ?? apps.error} />
      {envs.data && envs.data.length === 0 && <p>No environment yet: make one on the Environments page.</p>}
      {envPath && <DeployForm api={api} tenant={tenant} envPath={envPath} onDeployed={(a) => (apps.reload(), setSelected(a))} />}
      {(apps.data ?? []).length > 0 && (
        <table>
          <Head cols={["App", "Phase", "Replicas", "Image", "Updated"]} />
          <tbody>
            {apps.data!.map((a) => (
              <tr key={a.name} data-app={a.name} aria-selected={a.name === selected}>
                <td>
                  <button className="link" onClick={() => setSelected(a.name)}>
                    {a.name}
                  </button>
                </td>
                <td>
                  <PhaseBadge phase={a.phase} reason={a.reason} />
                </td>
                <td>{a.replicas}</td>
                <td className="mono">{shortImage(a.image)}</td>
                <td>{ago(a.updated)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {envPath && selected && env && (
        <AppDetail
          key={`${env}/${selected}`}
          api={api}
          envPath={envPath}
          env={env}
          app={selected}
          envs={envs.data ?? []}
          tenant={tenant}
          onDeleted={() => (setSelected(undefined), apps.reload())}
        />
      )}
    </section>
  );
}

export function shortImage(image?: string): string {
  if (!image) return "—";
  const at = image.indexOf("@sha256:");
  return at < 0 ? image : image.slice(at + 1, at + 20) + "…";
}

function PhaseBadge({ phase, reason }: { phase: Phase; reason?: string }) {
  const cls = phase === "running" ? "ok" : phase === "failed" ? "bad" : "idle";
  return (
    <span className={`badge ${cls}`} title={reason}>
      {phase}
      {phase === "failed" && reason ? `: ${reason}` : ""}
    </span>
  );
}

// Phases shows a deployment's way from validating to running, where it is
// now, and why it failed.
export function Phases({ d }: { d: Deployment }) {
  const at = phases.indexOf(d.phase);
  return (
    <ol className="phases" aria-label={`Deployment ${d.id}`}>
      {phases.map((p, i) => (
        <li key={p} className={d.phase === "failed" ? "" : i < at || d.phase === "running" ? "done" : i === at ? "now" : ""} aria-current={i === at ? "step" : undefined}>
          {p}
        </li>
      ))}
      {d.phase === "failed" && <li className="failed">failed: {d.reason}</li>}
    </ol>
  );
}

// useDeployment follows a deployment until it runs or fails.
function useDeployment(api: Api, path: string | undefined) {
  const [d, setD] = useState<Deployment>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    if (!path) return;
    let live = true;
    const tick = async () => {
      try {
        const next = await api.get<Deployment>(path);
        if (!live) return;
        setD(next);
        if (next.phase !== "running" && next.phase !== "failed") setTimeout(tick, 1000);
      } catch (e) {
        if (live) setError(e);
      }
    };
    tick();
    return () => {
      live = false;
    };
  }, [api, path]);
  return { d, error };
}

function DeployForm({ api, tenant, envPath, onDeployed }: { api: Api; tenant: string; envPath: string; onDeployed: (app: string) => void }) {
  const [app, setApp] = useState("");
  const [file, setFile] = useState<File>();
  const [replicas, setReplicas] = useState(1);
  const [progress, setProgress] = useState<number>();
  const [error, setError] = useState<unknown>();
  const [deployment, setDeployment] = useState<string>();
  const followed = useDeployment(api, deployment);

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!file) return;
    setError(undefined);
    setDeployment(undefined);
    setProgress(0);
    try {
      const art = await api.upload<Artifact>(`${tenantPath(tenant)}/apps/${encodeURIComponent(app)}/artifacts`, file, setProgress);
      const d = await api.call<Deployment>("POST", `${envPath}/deployments`, { app, artifact: art.sha256, replicas });
      setDeployment(`${envPath}/deployments/${encodeURIComponent(d.id)}`);
      onDeployed(app);
    } catch (err) {
      setError(err);
      setProgress(undefined);
    }
  }

  return (
    <form className="panel deploy" onSubmit={submit} aria-label="Deploy a JAR">
      <h3>Deploy a JAR</h3>
      <div className="fields">
        <label>
          App <input value={app} onChange={(e) => setApp(e.target.value)} required placeholder="orders" />
        </label>
        <label>
          JAR <input type="file" accept=".jar,application/java-archive" onChange={(e) => setFile(e.target.files?.[0])} />
        </label>
        <label>
          Replicas <input type="number" min={1} max={20} value={replicas} onChange={(e) => setReplicas(Number(e.target.value))} />
        </label>
        <button type="submit" disabled={!file || app === ""}>
          Upload and deploy
        </button>
      </div>
      {progress !== undefined && !deployment && (
        <p>
          <label>
            Uploading <progress max={1} value={progress} aria-label="Upload" /> {Math.round(progress * 100)} %
          </label>
        </p>
      )}
      <ErrorLine error={error ?? followed.error} />
      {followed.d && <Phases d={followed.d} />}
    </form>
  );
}

function AppDetail({
  api,
  tenant,
  envPath,
  env,
  app,
  envs,
  onDeleted,
}: {
  api: Api;
  tenant: string;
  envPath: string;
  env: string;
  app: string;
  envs: Environment[];
  onDeleted: () => void;
}) {
  const appPath = `${envPath}/apps/${encodeURIComponent(app)}`;
  const status = useLoad(() => api.get<AppStatus>(`${appPath}/status`), [api, appPath], 5000);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState<string>();
  const others = envs.map((e) => e.name).filter((n) => n !== env);
  const [target, setTarget] = useState(others[others.length - 1] ?? "");
  const [promotion, setPromotion] = useState<string>();
  const promoted = useDeployment(api, promotion);

  async function op(name: string) {
    setError(undefined);
    setBusy(name);
    try {
      await api.call("POST", `${appPath}/${name}`, {});
      status.reload();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(undefined);
    }
  }
  async function remove() {
    if (!window.confirm(`Delete ${app} from ${env}? Its instances stop and go; its exchanges stay until their retention, its originals for replay go.`)) return;
    setError(undefined);
    try {
      await api.call("DELETE", appPath);
      onDeleted();
    } catch (e) {
      setError(e);
    }
  }
  async function promote() {
    setError(undefined);
    try {
      const to = `${tenantPath(tenant)}/environments/${encodeURIComponent(target)}`;
      const d = await api.call<Deployment>("POST", `${to}/promotions`, { app, from: env });
      setPromotion(`${to}/deployments/${encodeURIComponent(d.id)}`);
    } catch (e) {
      setError(e);
    }
  }

  const st = status.data;
  const jvm = st?.live?.jvm;
  return (
    <div className="panel" role="region" aria-label={`App ${app}`}>
      <h3>
        {app} <span className="hint">in {env}</span>
      </h3>
      <ErrorLine error={error ?? status.error} />
      {st && (
        <dl className="facts">
          <dt>Phase</dt>
          <dd>
            <PhaseBadge phase={st.phase} />
            {!st.connected && <span className="hint"> (its runner is not connected)</span>}
          </dd>
          <dt>Instances</dt>
          <dd data-testid="instances">
            {st.live ? `${st.live.ready} of ${st.live.replicas} ready` : "—"}
          </dd>
          <dt>Image</dt>
          <dd className="mono" title={st.image}>
            {shortImage(st.image)}
          </dd>
          <dt>URL</dt>
          <dd>{st.url ? <a href={st.url}>{st.url}</a> : "—"}</dd>
          <dt>JVM</dt>
          <dd>
            {jvm
              ? `${jvm.vmName ?? "Java"} ${jvm.javaVersion ?? ""}, agent ${jvm.agentVersion ?? "?"}, heap used ${jvm.heapUsedBytes ? Math.round(jvm.heapUsedBytes / 1048576) + " MiB" : "?"}`
              : "—"}
          </dd>
        </dl>
      )}
      <p>
        {["stop", "start", "restart"].map((o) => (
          <button key={o} className="secondary" disabled={busy !== undefined} onClick={() => op(o)}>
            {busy === o ? `${o}…` : o[0].toUpperCase() + o.slice(1)}
          </button>
        ))}{" "}
        {others.length > 0 && (
          <>
            <label>
              Promote to{" "}
              <select value={target} onChange={(e) => setTarget(e.target.value)}>
                {others.map((o) => (
                  <option key={o}>{o}</option>
                ))}
              </select>
            </label>{" "}
            <button onClick={promote} disabled={!target}>
              Promote
            </button>
          </>
        )}{" "}
        <button className="danger" onClick={remove}>
          Delete
        </button>
      </p>
      {promoted.d && (
        <div role="status" aria-label="Promotion">
          <p>
            Promoting to {promoted.d.environment}: the same image,{" "}
            <span className="mono">{shortImage(promoted.d.image ?? st?.running)}</span>
            {promoted.d.image && st?.running && (promoted.d.image === st.running ? " (the digest running here)" : " (another digest!)")}
          </p>
          <Phases d={promoted.d} />
        </div>
      )}
      <History api={api} envPath={envPath} app={app} />
      <Logs api={api} path={`${appPath}/logs`} />
    </div>
  );
}

// History lists an app's deployments in its environment, newest first:
// what each deployed (an upload, or a promotion from where), its image and
// how it ended.
export function History({ api, envPath, app }: { api: Api; envPath: string; app: string }) {
  const ds = useLoad(() => api.get<Deployment[]>(`${envPath}/deployments`), [api, envPath], 10000);
  const mine = (ds.data ?? []).filter((d) => d.app === app).sort((a, b) => (b.created ?? "").localeCompare(a.created ?? ""));
  return (
    <details>
      <summary>Deployments ({mine.length})</summary>
      <ErrorLine error={ds.error} />
      <table aria-label={`Deployments of ${app}`}>
        <Head cols={["When", "What", "Image", "Phase"]} />
        <tbody>
          {mine.map((d) => (
            <tr key={d.id} data-deployment={d.id}>
              <td>{d.created ? new Date(d.created).toLocaleString() : ""}</td>
              <td>{d.promotedFrom ? `promoted from ${d.promotedFrom}` : `upload ${d.artifact?.slice(0, 12) ?? ""}`}</td>
              <td className="mono">{shortImage(d.image)}</td>
              <td>
                <PhaseBadge phase={d.phase} reason={d.reason} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

// Logs follows an app's output: paused, new lines wait and come when it
// resumes; the search keeps the lines that hold it.
export function Logs({ api, path }: { api: Api; path: string }) {
  const [lines, setLines] = useState<string[]>([]);
  const [paused, setPaused] = useState(false);
  const [query, setQuery] = useState("");
  const [error, setError] = useState<unknown>();
  const [held, setHeld] = useState<string[]>([]);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  useEffect(() => {
    const ctl = new AbortController();
    setLines([]);
    // An app not running yet has no logs, and a stream ends when its
    // instance goes: asked again every 3 s, from where it left off.
    (async () => {
      let seen = 0;
      while (!ctl.signal.aborted) {
        try {
          await api.follow(`${path}?follow=true&tail=${seen === 0 ? 200 : 0}`, ctl.signal, (l) => {
            seen++;
            setError(undefined);
            if (pausedRef.current) setHeld((h) => [...h, l].slice(-2000));
            else setLines((ls) => [...ls, l].slice(-2000));
          });
        } catch (e) {
          if (ctl.signal.aborted) return;
          setError(e);
        }
        await new Promise((r) => setTimeout(r, 3000));
      }
    })();
    return () => ctl.abort();
  }, [api, path]);

  function resume() {
    setLines((ls) => [...ls, ...held].slice(-2000));
    setHeld([]);
    setPaused(false);
  }
  const shown = query ? lines.filter((l) => l.includes(query)) : lines;
  return (
    <div className="logs">
      <h4>Logs</h4>
      <p>
        <button className="secondary" onClick={() => (paused ? resume() : setPaused(true))}>
          {paused ? "Resume" : "Pause"}
        </button>{" "}
        <label>
          Search <input value={query} onChange={(e) => setQuery(e.target.value)} />
        </label>{" "}
        <span className="hint">
          {shown.length} of {lines.length} lines{paused ? `, ${held.length} held` : ""}
        </span>
      </p>
      <ErrorLine error={error} />
      <pre className="loglines" aria-label="Log lines" tabIndex={0}>
        {shown.join("\n")}
      </pre>
    </div>
  );
}

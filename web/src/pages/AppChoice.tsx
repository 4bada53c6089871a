import { useState } from "react";
import { Api, tenantPath, type App, type Environment } from "../api";
import { useLoad } from "../ui";

export interface Choice {
  envs: Environment[] | undefined;
  apps: App[] | undefined;
  error: unknown;
  env?: string;
  app?: string;
  // The API's paths of the environment and app chosen.
  envPath?: string;
  appPath?: string;
  setEnv: (env: string) => void;
  setApp: (app: string) => void;
}

// useAppChoice is the environment and app a page of an app's telemetry
// shows: those a link named (?env=&app=), else the first of each.
export function useAppChoice(api: Api, tenant: string): Choice {
  const [initial] = useState(() => new URLSearchParams(window.location.search));
  const envs = useLoad(() => api.get<Environment[]>(`${tenantPath(tenant)}/environments`), [api, tenant]);
  const [envName, setEnvName] = useState<string | undefined>(initial.get("env") ?? undefined);
  const env = envName ?? envs.data?.[0]?.name;
  const envPath = env ? `${tenantPath(tenant)}/environments/${encodeURIComponent(env)}` : undefined;
  const apps = useLoad(() => (envPath ? api.get<App[]>(`${envPath}/apps`) : Promise.resolve([])), [api, envPath]);
  const [appName, setAppName] = useState<string | undefined>(initial.get("app") ?? undefined);
  const app = appName ?? apps.data?.[0]?.name;
  return {
    envs: envs.data,
    apps: apps.data,
    error: envs.error ?? apps.error,
    env,
    app,
    envPath,
    appPath: envPath && app ? `${envPath}/apps/${encodeURIComponent(app)}` : undefined,
    setEnv: (e) => {
      setEnvName(e);
      setAppName(undefined);
    },
    setApp: setAppName,
  };
}

// AppChoice is the two selects of a Choice; onChange is told of either.
export function AppChoice({ choice, onChange }: { choice: Choice; onChange?: () => void }) {
  return (
    <>
      <label>
        Environment{" "}
        <select aria-label="Environment" value={choice.env ?? ""} onChange={(e) => (choice.setEnv(e.target.value), onChange?.())}>
          {(choice.envs ?? []).map((e) => (
            <option key={e.name}>{e.name}</option>
          ))}
        </select>
      </label>{" "}
      <label>
        App{" "}
        <select aria-label="App" value={choice.app ?? ""} onChange={(e) => (choice.setApp(e.target.value), onChange?.())}>
          {(choice.apps ?? []).map((a) => (
            <option key={a.name}>{a.name}</option>
          ))}
        </select>
      </label>
    </>
  );
}

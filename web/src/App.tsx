import { useEffect, useMemo, useState } from "react";
import { Api, type Tenant } from "./api";
import { forgetToken, saveToken, savedToken } from "./session";
import { SignIn } from "./pages/SignIn";
import { Runners } from "./pages/Runners";
import { Environments } from "./pages/Environments";
import { Apps } from "./pages/Apps";
import { Exchanges } from "./pages/Exchanges";
import { Routes } from "./pages/Routes";
import { Audit } from "./pages/Audit";
import { Access } from "./pages/Access";
import { ErrorLine, useLoad } from "./ui";

// The pages, by the path they are at.
const pages = [
  { path: "/runners", title: "Runners" },
  { path: "/environments", title: "Environments" },
  { path: "/apps", title: "Apps" },
  { path: "/routes", title: "Routes" },
  { path: "/exchanges", title: "Exchanges" },
  { path: "/audit", title: "Audit log" },
  { path: "/access", title: "Access" },
] as const;

function usePath(): [string, (p: string) => void] {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const on = () => setPath(window.location.pathname);
    window.addEventListener("popstate", on);
    return () => window.removeEventListener("popstate", on);
  }, []);
  return [
    path,
    (p: string) => {
      window.history.pushState(null, "", p);
      setPath(p);
    },
  ];
}

type Theme = "light" | "dark";

export function App() {
  const [token, setToken] = useState(savedToken());
  const [theme, setTheme] = useState<Theme>(() =>
    window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light",
  );
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);

  if (!token) {
    return (
      <SignIn
        onSignIn={(t) => {
          saveToken(t);
          setToken(t);
        }}
      />
    );
  }
  return (
    <Console
      token={token}
      theme={theme}
      onTheme={() => setTheme(theme === "dark" ? "light" : "dark")}
      onSignOut={() => {
        forgetToken();
        setToken(null);
      }}
    />
  );
}

function Console({ token, theme, onTheme, onSignOut }: { token: string; theme: Theme; onTheme: () => void; onSignOut: () => void }) {
  const api = useMemo(() => new Api(token), [token]);
  const [path, go] = usePath();
  const tenants = useLoad(() => api.get<Tenant[]>("/api/v1/tenants"), [api]);
  const [tenant, setTenant] = useState<string>();
  const current = tenants.data?.find((t) => t.name === tenant) ?? tenants.data?.[0];
  const page = pages.find((p) => path.startsWith(p.path)) ?? pages[0];

  return (
    <div className="shell">
      <header className="top">
        <strong className="brand">Cameleer</strong>
        <label>
          <span className="sr-only">Tenant</span>
          <select value={current?.name ?? ""} onChange={(e) => setTenant(e.target.value)} aria-label="Tenant">
            {(tenants.data ?? []).map((t) => (
              <option key={t.name} value={t.name}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
        <nav aria-label="Pages">
          {pages.map((p) => (
            <a
              key={p.path}
              href={p.path}
              aria-current={p === page ? "page" : undefined}
              onClick={(e) => {
                e.preventDefault();
                go(p.path);
              }}
            >
              {p.title}
            </a>
          ))}
        </nav>
        <span className="spacer" />
        <button className="secondary" onClick={onTheme} aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}>
          {theme === "dark" ? "Light" : "Dark"}
        </button>
        <button className="secondary" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main>
        <ErrorLine error={tenants.error} />
        {tenants.data && tenants.data.length === 0 && <p>No tenant yet: an admin makes one with the API (POST /api/v1/tenants).</p>}
        {/* Keyed by tenant: nothing a page holds of one tenant is asked of another. */}
        {current && page.path === "/runners" && <Runners key={current.name} api={api} tenant={current.name} />}
        {current && page.path === "/environments" && <Environments key={current.name} api={api} tenant={current} />}
        {current && page.path === "/apps" && <Apps key={current.name} api={api} tenant={current.name} />}
        {current && page.path === "/routes" && <Routes key={current.name} api={api} tenant={current.name} onOpen={go} />}
        {current && page.path === "/exchanges" && <Exchanges key={current.name + window.location.search} api={api} tenant={current.name} />}
        {current && page.path === "/audit" && <Audit key={current.name} api={api} tenant={current.name} />}
        {current && page.path === "/access" && <Access key={current.name} api={api} tenant={current} onChanged={tenants.reload} />}
      </main>
    </div>
  );
}

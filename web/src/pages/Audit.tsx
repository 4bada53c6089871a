import { Api, tenantPath, type AuditRecord } from "../api";
import { ErrorLine, Head, Pager, useLoad, usePages } from "../ui";

const pageSize = 50;

// shortAction is a record's action without the tenant's prefix.
export function shortAction(action: string): string {
  return action.replace("/api/v1/tenants/{tenant}", "");
}

// Audit: the tenant's audit log, newest first, 50 a page: who changed or
// tried to change what, and how it ended; a replay's record says which
// exchange, its outcome and whether it was edited (admin role).
export function Audit({ api, tenant }: { api: Api; tenant: string }) {
  // A page starts before a record's id.
  const pages = usePages<number>();
  const before = pages.start;
  const recs = useLoad(
    () => api.get<AuditRecord[]>(`${tenantPath(tenant)}/audit?order=newest&limit=${pageSize}${before ? `&before=${before}` : ""}`),
    [api, tenant, before],
    before ? undefined : 5000,
  );
  const rows = recs.data ?? [];
  return (
    <section aria-labelledby="audit-title">
      <header className="page-head">
        <h2 id="audit-title">Audit log</h2>
        <span className="hint">Every call that changed something or tried to, newest first; the control plane keeps the last 10,000.</span>
      </header>
      <ErrorLine error={recs.error} />
      {recs.data && rows.length === 0 && <p>{pages.newest ? "Nothing yet." : "No older record."}</p>}
      {rows.length > 0 && (
        <table>
          <Head cols={["When", "Who", "What", "Answer", "Detail"]} />
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} data-audit={r.id}>
                <td>{new Date(r.time).toLocaleString()}</td>
                <td>
                  {r.role} <div className="sub mono">{r.token}</div>
                </td>
                <td>
                  {shortAction(r.action)}
                  <div className="sub mono">{r.path}</div>
                </td>
                <td>
                  <span className={`badge ${r.status < 300 ? "ok" : "bad"}`}>{r.status}</span>
                </td>
                <td className="mono">
                  {Object.entries(r.detail ?? {})
                    .map(([k, v]) => `${k}=${v}`)
                    .join(" ")}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager pages={pages} next={rows.length === pageSize ? rows[rows.length - 1].id : undefined} />
    </section>
  );
}

import { useState } from "react";
import { Api } from "../api";
import { ErrorLine, Head, useLoad } from "../ui";

export interface EgressRule {
  cidr?: string;
  host?: string;
  ports: number[];
  protocol: string;
}

interface Row {
  to: string;
  ports: string;
  protocol: string;
}

const ipv4 = /^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/;

// toRule reads a row as the API takes a rule: an IPv4 address or CIDR is
// a cidr, anything else a host name; ports separated by commas or spaces.
export function toRule(r: Row): EgressRule {
  const to = r.to.trim();
  const ports = r.ports
    .split(/[\s,]+/)
    .filter((p) => p !== "")
    .map(Number);
  return { ...(ipv4.test(to) ? { cidr: to.includes("/") ? to : `${to}/32` } : { host: to }), ports, protocol: r.protocol };
}

function toRow(r: EgressRule): Row {
  return { to: r.cidr ?? r.host ?? "", ports: r.ports.join(", "), protocol: r.protocol || "tcp" };
}

// ruleNumbers says the control plane's allow[i] as the page numbers rules.
export function ruleNumbers(msg: string): string {
  return msg.replace(/\ballow\[(\d+)\]/g, (_, i: string) => `rule ${Number(i) + 1}`);
}

// Egress edits what an environment's apps may reach outside it: nothing
// but what is listed (and DNS). The control plane checks each rule; its
// refusal is one line.
export function Egress({ api, path, env }: { api: Api; path: string; env: string }) {
  const loaded = useLoad(() => api.get<{ allow: EgressRule[] }>(path), [api, path]);
  const [rows, setRows] = useState<Row[]>();
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  const shown = rows ?? loaded.data?.allow.map(toRow) ?? [];
  const edit = (i: number, k: keyof Row, v: string) => setRows(shown.map((r, j) => (j === i ? { ...r, [k]: v } : r)));

  async function save() {
    setError(undefined);
    setSaved(false);
    try {
      // Every row goes, empty ones too, so that the control plane's
      // allow[i] is the page's rule i+1.
      const next = await api.call<{ allow: EgressRule[] }>("PUT", path, { allow: shown.map(toRule) });
      setRows(next.allow.map(toRow));
      setSaved(true);
    } catch (e) {
      setError(e instanceof Error ? new Error(ruleNumbers(e.message)) : e);
    }
  }

  return (
    <div className="egress" role="group" aria-label={`Egress of ${env}`}>
      <h4>Egress: what its apps may reach outside it</h4>
      <ErrorLine error={loaded.error} />
      {loaded.data && shown.length === 0 && <p className="hint">Nothing but DNS: add the systems its apps integrate.</p>}
      {shown.length > 0 && (
        <table>
          <caption className="sr-only">Egress rules of {env}</caption>
          <Head cols={["Address, network or host name", "Ports", "Protocol"]} hidden="Remove" />
          <tbody>
            {shown.map((r, i) => (
              <tr key={i}>
                <td>
                  <input aria-label={`Destination of rule ${i + 1} in ${env}`} value={r.to} placeholder="10.0.0.0/24 or api.example.com" onChange={(e) => edit(i, "to", e.target.value)} />
                </td>
                <td>
                  <input aria-label={`Ports of rule ${i + 1} in ${env}`} value={r.ports} placeholder="443, 8443" onChange={(e) => edit(i, "ports", e.target.value)} />
                </td>
                <td>
                  <select aria-label={`Protocol of rule ${i + 1} in ${env}`} value={r.protocol} onChange={(e) => edit(i, "protocol", e.target.value)}>
                    <option>tcp</option>
                    <option>udp</option>
                  </select>
                </td>
                <td>
                  <button className="secondary" onClick={() => setRows(shown.filter((_, j) => j !== i))} aria-label={`Remove rule ${i + 1} from ${env}`}>
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p>
        <button className="secondary" onClick={() => setRows([...shown, { to: "", ports: "", protocol: "tcp" }])}>
          Add a rule
        </button>{" "}
        <button onClick={save}>Save egress of {env}</button> {saved && <span role="status">Saved: connected runners apply it to running apps now.</span>}
      </p>
      <ErrorLine error={error} />
    </div>
  );
}

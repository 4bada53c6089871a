import { useState, type FormEvent } from "react";
import { Api, type Tenant } from "../api";
import { ErrorLine } from "../ui";

// SignIn takes an API token (an admin's or a tenant's), checks it with the
// control plane, and hands it on. Users and single sign-on would sign in
// here too, and hand on the same kind of session.
export function SignIn({ onSignIn }: { onSignIn: (token: string, tenants: Tenant[]) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const tenants = await new Api(token.trim()).get<Tenant[]>("/api/v1/tenants");
      onSignIn(token.trim(), tenants);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return (
    <main className="signin">
      <h1>Cameleer</h1>
      <form onSubmit={submit}>
        <label htmlFor="token">API token</label>
        <input
          id="token"
          type="password"
          autoComplete="off"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          placeholder="cmla_…"
          required
          autoFocus
        />
        <button type="submit" disabled={busy || token.trim() === ""}>
          Sign in
        </button>
        <ErrorLine error={error} />
        <p className="hint">
          The token stays in this tab only: closing it, or signing out, forgets it.
        </p>
      </form>
    </main>
  );
}

// The API token the user signed in with. Kept in sessionStorage: it goes
// when the tab closes, and is never written where another tab or a later
// visit would find it (localStorage).
const key = "cameleer.token";

export function savedToken(): string | null {
  return sessionStorage.getItem(key);
}

export function saveToken(token: string): void {
  sessionStorage.setItem(key, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(key);
}

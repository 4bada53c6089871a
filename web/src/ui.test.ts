import { ago, until } from "./ui";

describe("times", () => {
  const now = Date.parse("2026-12-06T10:00:00Z");
  it("says how long ago", () => {
    expect(ago(undefined, now)).toBe("never");
    expect(ago("2026-12-06T09:59:30Z", now)).toBe("30 s ago");
    expect(ago("2026-12-06T07:00:00Z", now)).toBe("3 h ago");
    expect(ago("2026-12-01T10:00:00Z", now)).toBe("5 d ago");
  });
  it("says how long until", () => {
    expect(until("2026-12-06T09:00:00Z", now)).toBe("expired");
    expect(until("2026-12-06T10:10:00Z", now)).toBe("in 10 min");
    expect(until("2027-12-06T10:00:00Z", now)).toBe("in 365 d");
  });
});

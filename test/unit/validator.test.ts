import { describe, expect, it } from "vitest";
import {
  checkTarget,
  classifyAddress,
  isAllowedAddress,
  parseCidrs,
  type Resolve,
  validateWebhookUrl,
} from "../../src/validator.js";
import { ALLOWED, DNS, REFUSED } from "./validator-cases.js";

/** Answers from the DNS table only; records every name asked so tests can assert no lookup happened. */
function fakeResolver(): Resolve & { asked: string[] } {
  const asked: string[] = [];
  const resolve = async (host: string) => {
    asked.push(host);
    const answer = DNS[host.toLowerCase().replace(/\.$/, "")];
    if (answer === undefined)
      throw Object.assign(new Error(`queryA ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    return answer;
  };
  return Object.assign(resolve, { asked });
}

describe("validateWebhookUrl: refused", () => {
  it("has a large table", () => {
    expect(REFUSED.length).toBeGreaterThanOrEqual(250);
    expect(new Set(REFUSED.map((c) => `${c.url} ${c.environment ?? ""}`)).size).toBe(REFUSED.length);
  });

  it.each(REFUSED)("$url → $code", async ({ url, code, environment }) => {
    const result = await validateWebhookUrl(url, {
      environment: environment ?? "development",
      resolve: fakeResolver(),
    });
    expect(result).toMatchObject({ ok: false, code });
    if (!result.ok) expect(result.reason.length).toBeGreaterThan(10);
  });
});

describe("validateWebhookUrl: allowed", () => {
  it("has at least 20 public targets", () => {
    expect(ALLOWED.length).toBeGreaterThanOrEqual(20);
  });

  it.each(ALLOWED)("$url passes", async ({ url, addresses, environment }) => {
    const result = await validateWebhookUrl(url, {
      environment: environment ?? "development",
      resolve: fakeResolver(),
    });
    expect(result).toEqual({ ok: true, url: new URL(url).href, addresses });
  });
});

describe("validateWebhookUrl: behaviour", () => {
  it("never resolves IP literals", async () => {
    const resolve = fakeResolver();
    await validateWebhookUrl("http://0x7f.1/", { environment: "development", resolve });
    await validateWebhookUrl("https://8.8.8.8/", { environment: "development", resolve });
    await validateWebhookUrl("https://[2606:4700:4700::1111]/", { environment: "development", resolve });
    expect(resolve.asked).toEqual([]);
  });

  it("refuses a bad port before asking DNS", async () => {
    const resolve = fakeResolver();
    const result = await validateWebhookUrl("https://hooks.example.com:6379/", {
      environment: "development",
      resolve,
    });
    expect(result).toMatchObject({ ok: false, code: "port" });
    expect(resolve.asked).toEqual([]);
  });

  it("refuses a mixed public/private answer and names the bad address", async () => {
    const result = await validateWebhookUrl("https://mixed.example/", {
      environment: "development",
      resolve: async () => ["8.8.8.8", "1.1.1.1", "192.168.0.10"],
    });
    expect(result).toMatchObject({ ok: false, code: "denied_address" });
    if (!result.ok) expect(result.reason).toContain("192.168.0.10");
  });

  it("refuses names when no resolver is configured", async () => {
    const result = await validateWebhookUrl("https://hooks.example.com/", { environment: "production" });
    expect(result).toMatchObject({ ok: false, code: "unresolvable" });
  });

  it("does not echo userinfo in the reason", async () => {
    const result = await validateWebhookUrl("https://admin:hunter2@hooks.example.com/", {
      environment: "production",
    });
    expect(result).toMatchObject({ ok: false, code: "userinfo" });
    if (!result.ok) expect(result.reason).not.toMatch(/hunter2|admin/);
  });

  it("allowTargets exempts listed addresses from the range and port rules", async () => {
    const opts = { environment: "development" as const, allowTargets: ["127.0.0.1/32"] };
    expect(await validateWebhookUrl("http://127.0.0.1:34567/hook", opts)).toEqual({
      ok: true,
      url: "http://127.0.0.1:34567/hook",
      addresses: ["127.0.0.1"],
    });
    expect(await validateWebhookUrl("http://2130706433:8080/", opts)).toMatchObject({ ok: true });
    // Only what is listed: the neighbour stays refused (its address is the first problem named),
    // and so does localhost.
    expect(await validateWebhookUrl("http://127.0.0.2:34567/", opts)).toMatchObject({
      ok: false,
      code: "denied_address",
    });
    expect(await validateWebhookUrl("http://127.0.0.2/", opts)).toMatchObject({
      ok: false,
      code: "denied_address",
    });
    expect(await validateWebhookUrl("http://localhost:34567/", opts)).toMatchObject({
      ok: false,
      code: "localhost",
    });
    // A public target keeps the port rule even when exemptions exist.
    expect(await validateWebhookUrl("http://8.8.8.8:6379/", opts)).toMatchObject({ ok: false, code: "port" });
  });

  it("allowTargets applies to resolved names, every address must qualify", async () => {
    const allowTargets = parseCidrs(["127.0.0.0/8", "::1/128"]);
    const local = await validateWebhookUrl("http://svc.test:9000/", {
      environment: "development",
      allowTargets,
      resolve: async () => ["127.0.0.5", "::1"],
    });
    expect(local).toEqual({ ok: true, url: "http://svc.test:9000/", addresses: ["127.0.0.5", "::1"] });
    const mixed = await validateWebhookUrl("http://svc.test:9000/", {
      environment: "development",
      allowTargets,
      resolve: async () => ["127.0.0.5", "10.0.0.5"],
    });
    expect(mixed).toMatchObject({ ok: false, code: "denied_address" });
  });

  it("still requires https in production for allow-listed targets", async () => {
    const result = await validateWebhookUrl("http://127.0.0.1:34567/", {
      environment: "production",
      allowTargets: ["127.0.0.1/32"],
    });
    expect(result).toMatchObject({ ok: false, code: "https_required" });
  });
});

describe("address table", () => {
  it("unwraps IPv4-mapped addresses to the IPv4 verdict", () => {
    expect(isAllowedAddress("::ffff:8.8.8.8")).toEqual({ ok: true });
    expect(isAllowedAddress("::ffff:127.0.0.1")).toMatchObject({ ok: false });
  });

  it("denies IPv4-compatible, NAT64, 6to4 and Teredo whatever they embed, naming the embedded address", () => {
    for (const [ip, embedded] of [
      ["::7f00:1", "127.0.0.1"],
      ["64:ff9b::808:808", "8.8.8.8"],
      ["2002:808:808::1", "8.8.8.8"],
      ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"],
    ] as const) {
      const verdict = isAllowedAddress(ip);
      expect(verdict.ok).toBe(false);
      if (!verdict.ok) expect(verdict.reason).toContain(embedded);
      expect(classifyAddress(ip)?.embedded?.address).toBe(embedded);
    }
  });

  it("names the category of well-known addresses", () => {
    expect(classifyAddress("169.254.169.254")?.category).toMatch(/metadata/);
    expect(classifyAddress("fd00:ec2::254")?.category).toMatch(/metadata/);
    expect(classifyAddress("168.63.129.16")?.category).toMatch(/metadata/);
    expect(classifyAddress("127.0.0.1")?.category).toBe("loopback");
    expect(classifyAddress("8.8.8.8")).toMatchObject({
      allowed: true,
      family: 4,
      category: "global unicast",
    });
  });

  it("rejects non-canonical or scoped text instead of guessing", () => {
    expect(classifyAddress("0x7f.1")).toBeNull();
    expect(classifyAddress("010.0.0.1")).toBeNull();
    expect(classifyAddress("example.com")).toBeNull();
    expect(isAllowedAddress("017700000001")).toMatchObject({ ok: false });
    expect(isAllowedAddress("2001:4860:4860::8888%eth0")).toMatchObject({ ok: false });
  });

  it("allowTargets match IPv4-mapped forms of listed IPv4 addresses", () => {
    const cidrs = parseCidrs(["127.0.0.1/32"]);
    expect(isAllowedAddress("::ffff:127.0.0.1", cidrs)).toEqual({ ok: true });
    expect(isAllowedAddress("127.0.0.1", cidrs)).toEqual({ ok: true });
    expect(isAllowedAddress("127.0.0.2", cidrs)).toMatchObject({ ok: false });
  });

  it("checkTarget: address first, then port, exemptions skip both", () => {
    const none = parseCidrs([]);
    expect(checkTarget("8.8.8.8", 443, none)).toEqual({ ok: true });
    expect(checkTarget("8.8.8.8", 22, none)).toMatchObject({ ok: false, code: "port" });
    expect(checkTarget("127.0.0.1", 22, none)).toMatchObject({ ok: false, code: "denied_address" });
    expect(checkTarget("127.0.0.1", 22, parseCidrs(["127.0.0.1"]))).toEqual({ ok: true });
  });
});

describe("parseCidrs", () => {
  it("parses IPv4, IPv6 and bare addresses, skipping empty entries", () => {
    const cidrs = parseCidrs([" 127.0.0.1/32", "10.0.0.0/8", "::1/128", "192.168.1.7", "fd00::/8", ""]);
    expect(cidrs.map((c) => [c.text, c.family, c.prefix])).toEqual([
      ["127.0.0.1/32", 4, 32],
      ["10.0.0.0/8", 4, 8],
      ["::1/128", 6, 128],
      ["192.168.1.7", 4, 32],
      ["fd00::/8", 6, 8],
    ]);
  });

  it.each([
    "1.2.3.4/33",
    "::1/129",
    "1.2.3.4/",
    "1.2.3.4/-1",
    "1.2.3.4/8x",
    "foo",
    "foo/8",
    "0x7f.1/32",
    "127.1/32",
    "1.2.3/24",
    "fe80::1%eth0/64",
    "/24",
  ])("throws on %j, naming it", (bad) => {
    expect(() => parseCidrs(["127.0.0.1/32", bad])).toThrow(`invalid CIDR "${bad.trim()}"`);
  });
});

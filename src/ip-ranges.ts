/**
 * The address half of the SSRF rules (CONTRACT §5): which IP addresses a webhook may reach.
 *
 * We keep our own table instead of trusting `ipaddr.range()`: ipaddr.js calls `::7f00:1`
 * (IPv4-compatible loopback) "unicast", knows nothing of cloud metadata, SRv6 or 3fff::/20,
 * and a library update could silently widen what we let through. The policy is an allow-list
 * in spirit: only global unicast passes, and every special-purpose block inside it is carved out.
 *
 * Decisions worth knowing:
 * - IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is the IPv4 address on a dual-stack socket, so it gets
 *   exactly the verdict of the embedded IPv4 address.
 * - IPv4-compatible (`::a.b.c.d`, deprecated), NAT64 (64:ff9b::/96, 64:ff9b:1::/48), 6to4
 *   (2002::/16) and Teredo (2001::/32) are denied whole, whatever they embed: a NAT64 gateway or a
 *   6to4/Teredo relay would forward to an IPv4 address we cannot see the policy of at dial time,
 *   and no legitimate webhook host needs them. The embedded IPv4 (Teredo: the de-obfuscated
 *   client) is named in the reason so an operator sees what the address was aiming at.
 * - Zone ids (`fe80::1%eth0`) are never allowed: a scoped address is by definition not global.
 */
import ipaddr from "ipaddr.js";

type IP = ipaddr.IPv4 | ipaddr.IPv6;

/** A parsed CIDR from WEBHOOK_ALLOW_TARGETS (see `parseCidrs`). */
export interface Cidr {
  /** The entry as written, for logs and messages. */
  readonly text: string;
  readonly family: 4 | 6;
  readonly network: IP;
  readonly prefix: number;
}

/** What an address is, in policy terms. */
export interface AddressInfo {
  /** Canonical text (IPv6 compressed, lower case, no brackets; zone id kept if present). */
  readonly address: string;
  readonly family: 4 | 6;
  /** True only for global unicast outside every denied block. */
  readonly allowed: boolean;
  /** "global unicast" when allowed, else the name of the block that denies it. */
  readonly category: string;
  /** The denying block, as a CIDR. */
  readonly range?: string;
  /** For IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo). */
  readonly embedded?: AddressInfo;
}

type Unwrap = "mapped" | "tail32" | "6to4" | "teredo";

interface Rule {
  readonly cidr: string;
  readonly category: string;
  readonly net: IP;
  readonly prefix: number;
  readonly unwrap?: Unwrap;
}

const MAPPED = "an IPv4-mapped address";
const TEREDO = "a Teredo address";

function rule(cidr: string, category: string, unwrap?: Unwrap): Rule {
  const [net, prefix] = ipaddr.parseCIDR(cidr);
  return unwrap ? { cidr, category, net, prefix, unwrap } : { cidr, category, net, prefix };
}

// First match wins, so the specific entries (metadata endpoints, broadcast) precede their
// enclosing blocks: the reason then names the more useful thing.
const V4_RULES: readonly Rule[] = [
  rule("169.254.169.254/32", "a cloud metadata endpoint (AWS, GCP, Azure, OpenStack)"),
  rule("169.254.170.2/32", "a cloud metadata endpoint (AWS ECS)"),
  rule("168.63.129.16/32", "a cloud metadata endpoint (Azure wireserver)"),
  rule("100.100.100.200/32", "a cloud metadata endpoint (Alibaba Cloud)"),
  rule("192.0.0.192/32", "a cloud metadata endpoint (Oracle Cloud)"),
  rule("0.0.0.0/8", "the unspecified 'this network' block"),
  rule("10.0.0.0/8", "a private network"),
  rule("100.64.0.0/10", "carrier-grade NAT shared space"),
  rule("127.0.0.0/8", "loopback"),
  rule("169.254.0.0/16", "link-local"),
  rule("172.16.0.0/12", "a private network"),
  rule("192.0.0.0/24", "reserved for IETF protocol assignments"),
  rule("192.0.2.0/24", "documentation space (TEST-NET-1)"),
  rule("192.88.99.0/24", "the deprecated 6to4 relay anycast block"),
  rule("192.168.0.0/16", "a private network"),
  rule("198.18.0.0/15", "benchmarking space"),
  rule("198.51.100.0/24", "documentation space (TEST-NET-2)"),
  rule("203.0.113.0/24", "documentation space (TEST-NET-3)"),
  rule("224.0.0.0/4", "multicast"),
  rule("255.255.255.255/32", "the limited broadcast address"),
  rule("240.0.0.0/4", "reserved"),
];

const V6_RULES: readonly Rule[] = [
  rule("fd00:ec2::254/128", "a cloud metadata endpoint (AWS IPv6)"),
  rule("::/128", "the unspecified address"),
  rule("::1/128", "loopback"),
  rule("::ffff:0:0/96", MAPPED, "mapped"),
  rule("::/96", "an IPv4-compatible address (deprecated)", "tail32"),
  rule("::ffff:0:0:0/96", "an IPv4-translated address (SIIT)", "tail32"),
  rule("64:ff9b::/96", "a NAT64 address", "tail32"),
  rule("64:ff9b:1::/48", "a local-use NAT64 address"),
  rule("100::/64", "discard-only space"),
  rule("100:0:0:1::/64", "the dummy prefix"),
  rule("2001::/32", TEREDO, "teredo"),
  rule("2001::/23", "reserved for IETF protocol assignments"),
  rule("2001:db8::/32", "documentation space"),
  rule("2002::/16", "a 6to4 address", "6to4"),
  rule("3fff::/20", "documentation space"),
  rule("5f00::/16", "an SRv6 segment identifier (SID)"),
  rule("fc00::/7", "a unique local address (ULA)"),
  rule("fe80::/10", "link-local"),
  rule("fec0::/10", "site-local (deprecated)"),
  rule("ff00::/8", "multicast"),
];

const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR("2000::/3");

/** Strict parse: only canonical dotted-quad IPv4 or RFC 4291 IPv6 text; `null` otherwise. */
export function parseIp(text: string): IP | null {
  // ipaddr.IPv4.parse also takes "0x7f.1" and "0177.0.0.1"; those forms only matter in URL hosts,
  // which the WHATWG parser has already normalised, so anything else here is malformed input.
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (text.includes(":") && ipaddr.IPv6.isValid(text)) return ipaddr.IPv6.parse(text);
  return null;
}

function v4FromBits(hi: number, lo: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([(hi >> 8) & 255, hi & 255, (lo >> 8) & 255, lo & 255]);
}

function embeddedV4(addr: ipaddr.IPv6, how: Unwrap): ipaddr.IPv4 {
  const p = addr.parts;
  switch (how) {
    case "mapped":
    case "tail32":
      return v4FromBits(p[6] ?? 0, p[7] ?? 0);
    case "6to4":
      return v4FromBits(p[1] ?? 0, p[2] ?? 0);
    case "teredo":
      // RFC 4380: the client's public IPv4 is stored bit-inverted in the last 32 bits.
      return v4FromBits(~(p[6] ?? 0), ~(p[7] ?? 0));
  }
}

function classifyV4(addr: ipaddr.IPv4): AddressInfo {
  const address = addr.toString();
  for (const r of V4_RULES) {
    if (r.net.kind() === "ipv4" && addr.match(r.net, r.prefix)) {
      return { address, family: 4, allowed: false, category: r.category, range: r.cidr };
    }
  }
  return { address, family: 4, allowed: true, category: "global unicast" };
}

function classifyV6(addr: ipaddr.IPv6): AddressInfo {
  const address = addr.toString();
  if (addr.zoneId !== undefined) {
    return { address, family: 6, allowed: false, category: "a scoped address with a zone id" };
  }
  for (const r of V6_RULES) {
    if (r.net.kind() !== "ipv6" || !addr.match(r.net, r.prefix)) continue;
    if (r.unwrap === undefined) {
      return { address, family: 6, allowed: false, category: r.category, range: r.cidr };
    }
    const embedded = classifyV4(embeddedV4(addr, r.unwrap));
    // A mapped address is the IPv4 address itself; every other embedding is denied whole.
    const allowed = r.unwrap === "mapped" && embedded.allowed;
    return { address, family: 6, allowed, category: r.category, range: r.cidr, embedded };
  }
  if (!addr.match(GLOBAL_UNICAST_V6)) {
    return {
      address,
      family: 6,
      allowed: false,
      category: "outside global unicast",
      range: "2000::/3",
    };
  }
  return { address, family: 6, allowed: true, category: "global unicast" };
}

/** Classifies an IP address given as text; `null` when the text is not a strict IP literal. */
export function classifyAddress(ip: string): AddressInfo | null {
  const addr = parseIp(ip);
  if (addr === null) return null;
  return addr instanceof ipaddr.IPv4 ? classifyV4(addr) : classifyV6(addr as ipaddr.IPv6);
}

/** A sentence naming why an address is refused (the address is not a secret; the URL may be). */
export function describeAddress(info: AddressInfo): string {
  const where = info.range ? ` (${info.range})` : "";
  if (info.embedded) {
    const inner = info.embedded;
    const innerWhere = inner.range ? ` (${inner.range})` : "";
    if (info.category === MAPPED) {
      return `${info.address} is the IPv4-mapped form of ${inner.address}, which is ${inner.category}${innerWhere}`;
    }
    const label = info.category === TEREDO ? "Teredo client" : "embedded IPv4";
    return `${info.address} is ${info.category}${where} and is never allowed (${label} ${inner.address} is ${inner.category})`;
  }
  return info.allowed ? `${info.address} is global unicast` : `${info.address} is ${info.category}${where}`;
}

export type AddressVerdict = { ok: true } | { ok: false; reason: string };

function matchesAny(addr: IP, cidrs: readonly Cidr[]): boolean {
  for (const c of cidrs) {
    if (c.network.kind() === addr.kind() && addr.match(c.network, c.prefix)) return true;
  }
  return false;
}

/** True when `ip` is inside one of the WEBHOOK_ALLOW_TARGETS entries. */
export function isAllowTargeted(ip: string, allowTargets: readonly Cidr[] | undefined): boolean {
  if (!allowTargets || allowTargets.length === 0) return false;
  const addr = parseIp(ip);
  if (addr === null) return false;
  if (addr instanceof ipaddr.IPv4) return matchesAny(addr, allowTargets);
  if (addr.zoneId !== undefined) return false;
  if (matchesAny(addr, allowTargets)) return true;
  // A dual-stack socket may report 127.0.0.1 as ::ffff:127.0.0.1; "127.0.0.1/32" should still match.
  return addr.isIPv4MappedAddress() && matchesAny(addr.toIPv4Address(), allowTargets);
}

/**
 * The address check the validator and the HTTP client's connect hook share. Addresses inside
 * `allowTargets` pass whatever they are (development and tests only).
 */
export function isAllowedAddress(ip: string, allowTargets?: readonly Cidr[]): AddressVerdict {
  if (isAllowTargeted(ip, allowTargets)) return { ok: true };
  const info = classifyAddress(ip);
  if (info === null) return { ok: false, reason: "the resolved address is not a valid IP address" };
  return info.allowed ? { ok: true } : { ok: false, reason: describeAddress(info) };
}

/**
 * Parses WEBHOOK_ALLOW_TARGETS entries ("127.0.0.1/32", "::1/128"; a bare address means a single
 * host). Empty entries are skipped so "a, b," works; anything malformed throws, naming the entry.
 */
export function parseCidrs(list: readonly string[]): Cidr[] {
  const out: Cidr[] = [];
  for (const raw of list) {
    const text = raw.trim();
    if (text === "") continue;
    const slash = text.indexOf("/");
    const addrText = slash === -1 ? text : text.slice(0, slash);
    const prefixText = slash === -1 ? undefined : text.slice(slash + 1);
    const network = parseIp(addrText);
    if (network === null || (network instanceof ipaddr.IPv6 && network.zoneId !== undefined)) {
      throw new Error(`invalid CIDR "${text}": "${addrText}" is not an IPv4 or IPv6 address`);
    }
    const family: 4 | 6 = network instanceof ipaddr.IPv4 ? 4 : 6;
    const max = family === 4 ? 32 : 128;
    let prefix = max;
    if (prefixText !== undefined) {
      if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
        throw new Error(`invalid CIDR "${text}": prefix length must be an integer from 0 to ${max}`);
      }
      prefix = Number(prefixText);
    }
    out.push({ text, family, network, prefix });
  }
  return out;
}

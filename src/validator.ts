/**
 * Webhook URL rules (CONTRACT §5). Pure: the only I/O, DNS, is the injected `resolve`.
 *
 * Everything is decided on what the WHATWG URL parser made of the input (the same parser undici
 * uses to dial), so `http://2130706433/`, `http://0x7f.1/` and `http://①②⑦.⓪.⓪.①/` are simply
 * 127.0.0.1 by the time we look at them. The HTTP client repeats the address and port check on the
 * address it actually dials, which is what stops DNS rebinding; this module is the first line.
 */
import {
  type AddressInfo,
  type AddressVerdict,
  type Cidr,
  classifyAddress,
  describeAddress,
  isAllowedAddress,
  isAllowTargeted,
  parseCidrs,
  parseIp,
} from "./ip-ranges.js";

export type { AddressInfo, AddressVerdict, Cidr };
export { classifyAddress, describeAddress, isAllowedAddress, isAllowTargeted, parseCidrs };

export type Environment = "development" | "production";

/** Machine-readable refusal codes; the API maps every one to 422. */
export type ValidationCode =
  | "invalid_url"
  | "scheme"
  | "https_required"
  | "userinfo"
  | "port"
  | "localhost"
  | "denied_address"
  | "unresolvable";

/** Resolves a host name to IP address strings (A and AAAA). Rejecting or answering [] both mean "does not resolve". */
export type Resolve = (host: string) => Promise<readonly string[]>;

export interface ValidateOptions {
  environment: Environment;
  /** WEBHOOK_ALLOW_TARGETS: raw CIDR strings or the output of `parseCidrs`. */
  allowTargets?: readonly string[] | readonly Cidr[];
  /** Required for host names; without it a name is refused as `unresolvable`. */
  resolve?: Resolve;
}

/** `reason` is a sentence for the API's 422 detail; it never repeats userinfo from the URL. */
export type Refusal = { ok: false; reason: string; code: ValidationCode };

/** `url` is the normalised href to store; `addresses` what the host resolved to (or the literal). */
export type ValidationResult = { ok: true; url: string; addresses: string[] } | Refusal;

/** The only ports a webhook may use unless its addresses are in WEBHOOK_ALLOW_TARGETS. */
export const ALLOWED_PORTS: ReadonlySet<number> = new Set([80, 443, 8080, 8443]);

const MAX_URL_LENGTH = 2048;

function refuse(code: ValidationCode, reason: string): Refusal {
  return { ok: false, code, reason };
}

/** The port a URL dials, with the scheme default filled in. */
export function effectivePort(url: URL): number {
  if (url.port !== "") return Number(url.port);
  return url.protocol === "https:" ? 443 : 80;
}

/** `localhost`, `*.localhost` and their trailing-dot forms (RFC 6761 says they are loopback). */
export function isLocalhostName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.+$/, "");
  return name === "localhost" || name.endsWith(".localhost");
}

/** Strips the brackets WHATWG keeps around IPv6 hosts. */
export function bareHost(hostname: string): string {
  return hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
}

/**
 * Parses and applies every rule that needs no address: syntax, scheme, userinfo, localhost names.
 * The HTTP client runs this too before each request, so a URL that bypassed registration is still
 * held to the same shape.
 */
export function checkUrlShape(input: string, environment: Environment): Refusal | { ok: true; url: URL } {
  if (typeof input !== "string" || input.length === 0) return refuse("invalid_url", "the URL is empty");
  if (input.length > MAX_URL_LENGTH) {
    return refuse("invalid_url", `the URL is longer than ${MAX_URL_LENGTH} characters`);
  }
  // The WHATWG parser silently drops tabs/newlines and turns "\" into "/", while other parsers
  // (a receiver's logs, a proxy, an older client) read them differently. A URL that parsers
  // disagree on is how filters get bypassed, so such input is refused rather than normalised.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  if (/[\u0000-\u0020\u007f\\]/.test(input)) {
    return refuse("invalid_url", "the URL contains whitespace, control characters or a backslash");
  }
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return refuse("invalid_url", "the URL could not be parsed");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return refuse(
      "scheme",
      `the scheme "${url.protocol.slice(0, -1)}" is not allowed; use https (or http in development)`,
    );
  }
  if (environment === "production" && url.protocol !== "https:") {
    return refuse("https_required", "production requires an https URL");
  }
  if (url.username !== "" || url.password !== "") {
    // Never echo them back: userinfo is usually a credential.
    return refuse("userinfo", "the URL must not contain a user name or password");
  }
  if (url.hostname === "") return refuse("invalid_url", "the URL has no host");
  if (isLocalhostName(url.hostname)) {
    return refuse(
      "localhost",
      "localhost names are not allowed; for local testing use 127.0.0.1 with WEBHOOK_ALLOW_TARGETS",
    );
  }
  return { ok: true, url };
}

/** Accepts WEBHOOK_ALLOW_TARGETS raw (parsed here, throwing on a bad entry) or already parsed. */
export function toCidrs(list: readonly string[] | readonly Cidr[] | undefined): readonly Cidr[] {
  if (!list || list.length === 0) return [];
  return typeof list[0] === "string" ? parseCidrs(list as readonly string[]) : (list as readonly Cidr[]);
}

/**
 * The address-and-port rule shared by registration and connect time: a target in
 * `allowTargets` passes regardless of range and port; otherwise the address must be global
 * unicast and the port one of ALLOWED_PORTS.
 */
export function checkTarget(
  address: string,
  port: number,
  allowTargets: readonly Cidr[],
): Refusal | { ok: true } {
  if (isAllowTargeted(address, allowTargets)) return { ok: true };
  const verdict = isAllowedAddress(address);
  if (!verdict.ok) return refuse("denied_address", verdict.reason);
  if (!ALLOWED_PORTS.has(port)) return portRefusal(port);
  return { ok: true };
}

function portRefusal(port: number): Refusal {
  return refuse("port", `port ${port} is not allowed; use 80, 443, 8080 or 8443`);
}

export async function validateWebhookUrl(url: string, opts: ValidateOptions): Promise<ValidationResult> {
  const shape = checkUrlShape(url, opts.environment);
  if (!shape.ok) return shape;
  const parsed = shape.url;
  const allowTargets = toCidrs(opts.allowTargets);
  const port = effectivePort(parsed);
  // With no exemptions configured a bad port can be refused before any DNS traffic.
  if (allowTargets.length === 0 && !ALLOWED_PORTS.has(port)) return portRefusal(port);

  const host = bareHost(parsed.hostname);
  let addresses: string[];
  if (parseIp(host) !== null || host.includes(":")) {
    addresses = [host];
  } else {
    if (!opts.resolve)
      return refuse("unresolvable", "the host name cannot be checked: no resolver configured");
    let answer: readonly string[];
    try {
      answer = await opts.resolve(host);
    } catch {
      return refuse("unresolvable", `the host "${host}" does not resolve`);
    }
    if (answer.length === 0)
      return refuse("unresolvable", `the host "${host}" does not resolve to any address`);
    addresses = [...new Set(answer)];
  }

  // Every address must pass: a name answering one public and one private address is one
  // rebinding-friendly round-robin away from the inside.
  for (const address of addresses) {
    const verdict = checkTarget(address, port, allowTargets);
    if (!verdict.ok) {
      if (verdict.code !== "denied_address" || host === address) return verdict;
      return refuse(verdict.code, `"${host}" resolves to a denied address: ${verdict.reason}`);
    }
  }
  return { ok: true, url: parsed.href, addresses };
}

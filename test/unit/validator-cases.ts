/**
 * Table data for validator.test.ts. Nothing here is ever dialled: these strings only go through
 * `validateWebhookUrl`, and names are answered by the fake resolver below, never by real DNS.
 */
import type { Environment, ValidationCode } from "../../src/validator.js";

export interface RefusedCase {
  url: string;
  code: ValidationCode;
  environment?: Environment;
}

export interface AllowedCase {
  url: string;
  addresses: string[];
  environment?: Environment;
}

/** What the injected resolver answers; a name not listed fails like NXDOMAIN. */
export const DNS: Record<string, string[]> = {
  "hooks.example.com": ["93.184.215.14"],
  "v6.example.net": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
  "dual.example.org": ["1.1.1.1", "2606:4700:4700::1111"],
  "evil.com": ["203.0.113.77"], // documentation space: a name may not point at it either
  "public.test": ["8.8.8.8"],
  "rebind.example": ["127.0.0.1"],
  "private.example": ["10.1.2.3"],
  "metadata.example": ["169.254.169.254"],
  "metadata.google.internal": ["169.254.169.254"],
  "mixed.example": ["8.8.8.8", "10.0.0.1"],
  "mixed6.example": ["2001:4860:4860::8888", "fd00::1"],
  "mapped.example": ["::ffff:127.0.0.1"],
  "ula.example": ["fd12:3456:789a::1"],
  "teredo.example": ["2001:0:4136:e378:8000:63bf:3fff:fdd2"],
  "garbage.example": ["not-an-ip"],
  "empty.example": [],
};

// ---------------------------------------------------------------------------------------------
// Every numeric spelling of an IPv4 address that the WHATWG parser turns back into it.

const FULLWIDTH = "０１２３４５６７８９";
const CIRCLED = "⓪①②③④⑤⑥⑦⑧⑨";

function mapDigits(s: string, table: string): string {
  return s.replace(/\d/g, (d) => table[Number(d)] ?? d);
}

function hex16(n: number): string {
  return n.toString(16);
}

export function numericForms(ip: string): string[] {
  const [a = 0, b = 0, c = 0, d = 0] = ip.split(".").map(Number);
  const n = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
  const hi = (a << 8) | b;
  const lo = (c << 8) | d;
  const oct = (x: number) => `0${x.toString(8)}`;
  const hex = (x: number) => `0x${x.toString(16)}`;
  const dotted = `${a}.${b}.${c}.${d}`;
  const hosts = [
    String(n), // 2130706433
    hex(n), // 0x7f000001
    `0${n.toString(8)}`, // 017700000001
    [a, b, c, d].map(hex).join("."), // 0x7f.0x0.0x0.0x1
    [a, b, c, d].map(oct).join("."), // 0177.00.00.01
    `${a}.${b}.${(c << 8) | d}`, // 127.0.1
    `${a}.${(b << 16) | (c << 8) | d}`, // 127.1
    `${hex(a)}.${oct(b)}.${c}.${hex(d).toUpperCase().replace("0X", "0x")}`, // mixed radix
    `${dotted}.`, // trailing dot
    [...dotted].map((ch) => `%${ch.charCodeAt(0).toString(16)}`).join(""), // %31%32%37...
    mapDigits(dotted, FULLWIDTH), // １２７.０.０.１
    dotted.replaceAll(".", "。"), // ideographic full stops
    mapDigits(dotted, CIRCLED), // ①②⑦.⓪.⓪.①
    `[::ffff:${dotted}]`,
    `[::ffff:${hex16(hi)}:${hex16(lo)}]`,
    `[0:0:0:0:0:ffff:${dotted}]`,
    `[::${dotted}]`, // IPv4-compatible
    `[64:ff9b::${dotted}]`, // NAT64
    `[2002:${hex16(hi)}:${hex16(lo)}::1]`, // 6to4
    `[2001:0:4136:e378:8000:63bf:${hex16(~hi & 0xffff)}:${hex16(~lo & 0xffff)}]`, // Teredo
  ];
  return hosts.map((h) => `http://${h}/`);
}

const NUMERIC_TARGETS = [
  "127.0.0.1",
  "10.0.0.1",
  "169.254.169.254",
  "192.168.1.1",
  "0.0.0.0",
  "100.100.100.200",
  "172.16.0.1",
];

const numeric: RefusedCase[] = NUMERIC_TARGETS.flatMap((ip) =>
  numericForms(ip).map((url) => ({ url, code: "denied_address" as const })),
);

// ---------------------------------------------------------------------------------------------
// Every range of CONTRACT §5: first, last and an inner address.

const V4_DENIED = [
  ...["0.0.0.0", "0.255.255.255", "0.1.2.3"],
  ...["10.0.0.0", "10.255.255.255", "10.10.10.10"],
  ...["100.64.0.0", "100.127.255.255", "100.100.100.200"],
  ...["127.0.0.0", "127.255.255.255", "127.0.0.53"],
  ...["169.254.0.0", "169.254.255.255", "169.254.169.254", "169.254.170.2"],
  ...["172.16.0.0", "172.31.255.255", "172.20.1.1"],
  ...["192.0.0.0", "192.0.0.255", "192.0.0.192", "192.0.0.8"],
  ...["192.0.2.0", "192.0.2.255", "192.0.2.1"],
  ...["192.88.99.0", "192.88.99.255", "192.88.99.1"],
  ...["192.168.0.0", "192.168.255.255", "192.168.1.1"],
  ...["198.18.0.0", "198.19.255.255", "198.18.0.1"],
  ...["198.51.100.0", "198.51.100.255", "198.51.100.1"],
  ...["203.0.113.0", "203.0.113.255", "203.0.113.1"],
  ...["224.0.0.0", "239.255.255.255", "224.0.0.251"],
  ...["240.0.0.0", "254.255.255.255", "250.1.2.3"],
  "255.255.255.255",
  "168.63.129.16",
];

const V6_DENIED = [
  ...["::", "::1", "0:0:0:0:0:0:0:1", "0000::0001"],
  ...[
    "::ffff:192.0.0.192",
    "::ffff:100.64.0.1",
    "::ffff:255.255.255.255",
    "::ffff:224.0.0.1",
    "::ffff:7f00:2",
  ],
  ...["::7f00:1", "::a00:1", "::8.8.8.8", "::2"], // IPv4-compatible, public embedded included
  "::ffff:0:808:808", // IPv4-translated (SIIT)
  ...["64:ff9b::808:808", "64:ff9b::7f00:1", "64:ff9b:1::1", "64:ff9b:1:ffff::1"],
  ...["100::", "100::1", "100::ffff:ffff:ffff:ffff", "100:0:0:1::1"],
  ...["2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff"], // Teredo
  ...["2001:1::1", "2001:2::1", "2001:10::1", "2001:20::1", "2001:1ff:ffff::1"], // 2001::/23
  ...["2001:db8::", "2001:db8::1", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"],
  ...["2002::", "2002:808:808::1", "2002:c0a8:fe01::1", "2002:ffff:ffff::1"],
  ...["3fff::", "3fff::1", "3fff:fff:ffff::1"],
  ...["5f00::", "5f00::1", "5f00:ffff::1"],
  ...["fc00::", "fc00::1", "fd00::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fd00:ec2::254"],
  ...["fe80::", "fe80::1", "febf:ffff::1"],
  ...["fec0::1", "feff:ffff::1"],
  ...["ff00::", "ff02::1", "ff05::1:3", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
  ...["1::1", "200::1", "1fff:ffff::1", "4000::1", "5eff:ffff::1", "5f01::1", "8000::1", "e000::1"], // outside 2000::/3
];

const ranges: RefusedCase[] = [
  ...V4_DENIED.map((ip) => ({ url: `http://${ip}/`, code: "denied_address" as const })),
  ...V6_DENIED.map((ip) => ({ url: `http://[${ip}]/`, code: "denied_address" as const })),
  // Metadata and private addresses behind the other allowed ports and https.
  { url: "https://169.254.169.254/latest/meta-data/", code: "denied_address" },
  { url: "http://169.254.169.254:8080/computeMetadata/v1/", code: "denied_address" },
  { url: "https://[fd00:ec2::254]:8443/latest/api/token", code: "denied_address" },
  { url: "https://100.100.100.200/latest/meta-data/", code: "denied_address" },
  { url: "https://192.0.0.192/opc/v2/instance/", code: "denied_address" },
  { url: "https://168.63.129.16/machine?comp=goalstate", code: "denied_address" },
];

// ---------------------------------------------------------------------------------------------

const names: RefusedCase[] = [
  { url: "http://localhost/", code: "localhost" },
  { url: "http://LOCALHOST/", code: "localhost" },
  { url: "http://LocalHost:8080/", code: "localhost" },
  { url: "http://localhost./", code: "localhost" },
  { url: "http://localhost../", code: "localhost" },
  { url: "http://localhost%2e/", code: "localhost" },
  { url: "http://loc%61lhost/", code: "localhost" },
  { url: "http://%6c%6f%63%61%6c%68%6f%73%74/", code: "localhost" },
  { url: "http://ｌｏｃａｌｈｏｓｔ/", code: "localhost" },
  { url: "http://foo.localhost/", code: "localhost" },
  { url: "http://a.b.localhost:8080/", code: "localhost" },
  { url: "http://foo.localhost./", code: "localhost" },
  { url: "https://api.localhost/hook", code: "localhost" },
  // Names answered by the fake resolver.
  { url: "http://rebind.example/", code: "denied_address" },
  { url: "http://private.example/", code: "denied_address" },
  { url: "http://metadata.example/", code: "denied_address" },
  { url: "http://metadata.google.internal/computeMetadata/v1/", code: "denied_address" },
  { url: "http://mixed.example/", code: "denied_address" },
  { url: "http://mixed6.example/", code: "denied_address" },
  { url: "http://mapped.example/", code: "denied_address" },
  { url: "http://ula.example/", code: "denied_address" },
  { url: "http://teredo.example/", code: "denied_address" },
  { url: "http://evil.com/", code: "denied_address" },
  { url: "http://garbage.example/", code: "denied_address" },
  { url: "http://empty.example/", code: "unresolvable" },
  { url: "http://nxdomain.example/", code: "unresolvable" },
  { url: "http://127.0.0.1.evil.com/", code: "unresolvable" },
];

const tricks: RefusedCase[] = [
  { url: "http://evil.com\\@127.0.0.1/", code: "invalid_url" },
  { url: "http://public.test\\@127.0.0.1/", code: "invalid_url" },
  { url: "http://127.0.0.1\\@public.test/", code: "invalid_url" },
  { url: "http:\\\\127.0.0.1\\", code: "invalid_url" },
  { url: "http://127.0.0.1#@public.test/", code: "denied_address" },
  { url: "http://127.0.0.1?@public.test/", code: "denied_address" },
  { url: "http://127.0.0.1/@public.test/", code: "denied_address" },
  { url: "http://127.0.0.1:80#@public.test:80/", code: "denied_address" },
  { url: "http://public.test@127.0.0.1/", code: "userinfo" },
  { url: "http://user@public.test/", code: "userinfo" },
  { url: "http://user:secret@public.test/", code: "userinfo" },
  { url: "http://:secret@public.test/", code: "userinfo" },
  { url: "http://127.0.0.1:80@public.test/", code: "userinfo" },
  { url: "http://127.0.0.1%2523@public.test/", code: "userinfo" },
  { url: "https://token@hooks.example.com/", code: "userinfo" },
  { url: "http://127.0.0.1\t/", code: "invalid_url" },
  { url: "http://12\n7.0.0.1/", code: "invalid_url" },
  { url: " http://127.0.0.1/", code: "invalid_url" },
  { url: "http://127.0.0.1/ ", code: "invalid_url" },
  { url: "http://[fe80::1%25eth0]/", code: "invalid_url" },
  { url: "http://[fe80::1%eth0]/", code: "invalid_url" },
  { url: "http://[::1%251]/", code: "invalid_url" },
  { url: "http://[%3a%3a1]/", code: "invalid_url" },
  { url: "http://::1/", code: "invalid_url" },
  { url: "http://256.0.0.1/", code: "invalid_url" },
  { url: "http://0x100000000/", code: "invalid_url" },
  { url: "http://1.2.3.4.5/", code: "invalid_url" },
  { url: "http://foo.0x1/", code: "invalid_url" },
  { url: "http:///", code: "invalid_url" },
  { url: "http://", code: "invalid_url" },
  { url: "//public.test/", code: "invalid_url" },
  { url: "public.test", code: "invalid_url" },
  { url: "", code: "invalid_url" },
  { url: `https://hooks.example.com/${"a".repeat(2100)}`, code: "invalid_url" },
];

const schemes: RefusedCase[] = [
  { url: "ftp://public.test/", code: "scheme" },
  { url: "file:///etc/passwd", code: "scheme" },
  { url: "file://127.0.0.1/etc/passwd", code: "scheme" },
  { url: "gopher://127.0.0.1:6379/_INFO", code: "scheme" },
  { url: "javascript:alert(1)", code: "scheme" },
  { url: "data:text/plain,hello", code: "scheme" },
  { url: "dict://127.0.0.1:11211/stat", code: "scheme" },
  { url: "ldap://public.test/", code: "scheme" },
  { url: "sftp://public.test/", code: "scheme" },
  { url: "tftp://public.test/", code: "scheme" },
  { url: "ws://public.test/", code: "scheme" },
  { url: "wss://public.test/", code: "scheme" },
  { url: "mailto:ops@public.test", code: "scheme" },
  { url: "jar:http://public.test!/", code: "scheme" },
  { url: "blob:http://public.test/uuid", code: "scheme" },
  { url: "httpx://public.test/", code: "scheme" },
];

const ports: RefusedCase[] = [
  22, 25, 6379, 0, 65535, 1, 81, 444, 3000, 5432, 8000, 8081, 9200, 11211, 27017,
].map((port) => ({ url: `http://8.8.8.8:${port}/`, code: "port" as const }));
ports.push(
  { url: "https://hooks.example.com:22/", code: "port" },
  { url: "https://[2606:4700:4700::1111]:6379/", code: "port" },
  { url: "http://1.1.1.1:65536/", code: "invalid_url" },
);

const production: RefusedCase[] = [
  { url: "http://hooks.example.com/", code: "https_required", environment: "production" },
  { url: "http://8.8.8.8/", code: "https_required", environment: "production" },
  { url: "http://[2606:4700:4700::1111]:8080/", code: "https_required", environment: "production" },
  { url: "ftp://hooks.example.com/", code: "scheme", environment: "production" },
  { url: "https://127.0.0.1/", code: "denied_address", environment: "production" },
];

export const REFUSED: RefusedCase[] = [
  ...numeric,
  ...ranges,
  ...names,
  ...tricks,
  ...schemes,
  ...ports,
  ...production,
];

// ---------------------------------------------------------------------------------------------

const PUBLIC_V4 = [
  ...["8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "149.112.112.112", "208.67.222.222"],
  ...["4.2.2.2", "140.82.112.3", "151.101.1.69", "185.199.108.153", "13.107.42.14", "1.0.0.0"],
  // Just outside the denied blocks.
  ...["9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0"],
  ...["169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0", "192.0.1.255", "192.0.3.0"],
  ...["192.88.98.255", "192.88.100.0", "192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0"],
  ...["198.51.99.255", "198.51.101.0", "203.0.112.255", "203.0.114.0", "223.255.255.255", "168.63.129.17"],
];

const PUBLIC_V6 = [
  ...["2001:4860:4860::8888", "2606:4700:4700::1111", "2620:fe::fe", "2a00:1450:4001:80b::200e"],
  ...["2404:6800:4003:c00::71", "2001:200::1", "2001:db7:ffff::1", "2001:db9::1", "2003::1"],
  ...["3fff:1000::1", "2000::1", "3ffe::1", "2c0f:fb50:4003::1"],
];

export const ALLOWED: AllowedCase[] = [
  ...PUBLIC_V4.map((ip) => ({ url: `http://${ip}/`, addresses: [ip] })),
  ...PUBLIC_V6.map((ip) => ({ url: `http://[${ip}]/`, addresses: [ip] })),
  { url: "http://[::ffff:8.8.8.8]/", addresses: ["::ffff:808:808"] }, // mapped: the IPv4 verdict
  { url: "https://1.1.1.1:8443/hook", addresses: ["1.1.1.1"], environment: "production" },
  { url: "http://8.8.4.4:8080/x?y=1", addresses: ["8.8.4.4"] },
  { url: "https://8.8.8.8:80/", addresses: ["8.8.8.8"] },
  { url: "http://8.8.8.8:443/", addresses: ["8.8.8.8"] },
  {
    url: "https://hooks.example.com/webhooks/continuum",
    addresses: ["93.184.215.14"],
    environment: "production",
  },
  { url: "https://HOOKS.Example.COM./x", addresses: ["93.184.215.14"] },
  { url: "https://v6.example.net:8443/", addresses: ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"] },
  { url: "https://dual.example.org/", addresses: ["1.1.1.1", "2606:4700:4700::1111"] },
  // The fragment and a "@" in the path do not change the host.
  { url: "https://public.test/#@127.0.0.1", addresses: ["8.8.8.8"] },
  { url: "https://public.test/path/@127.0.0.1", addresses: ["8.8.8.8"] },
];

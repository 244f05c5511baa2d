/**
 * docs/EVENTS.md against the code: one section per event type of src/events.ts (plus
 * `webhook.test`), whose field table matches the `EventData` interface field for field (name, type,
 * optional or not), whose priority is `defaultPriority`, and whose example is a body exactly as
 * sent (canonicalJson of itself) with the envelope and the documented `data` fields. The signed
 * request shown at the top must verify with the secret it names. Every fenced block is checked.
 */
import { readFileSync } from "node:fs";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { TEST_VECTORS_PATH, type TestVectors } from "../../scripts/gen-test-vectors.js";
import { defaultPriority, EVENT_TYPES, TEST_EVENT } from "../../src/events.js";
import { isId } from "../../src/ids.js";
import { canonicalJson, signBody } from "../../src/signer.js";
import { verifyWebhook } from "../../src/verify.js";

const DOC = readFileSync(new URL("../../docs/EVENTS.md", import.meta.url), "utf8");
const EVENTS_SOURCE = new URL("../../src/events.ts", import.meta.url);

interface Field {
  name: string;
  type: string;
  required: boolean;
}

/** The members of `interface <name>` in src/events.ts, read with the TypeScript parser. */
function interfaceMembers(name: string): ts.NodeArray<ts.TypeElement> {
  const file = ts.createSourceFile(
    "events.ts",
    readFileSync(EVENTS_SOURCE, "utf8"),
    ts.ScriptTarget.Latest,
    true,
  );
  let found: ts.InterfaceDeclaration | undefined;
  file.forEachChild((node) => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === name) found = node;
  });
  if (!found) throw new Error(`interface ${name} not found in src/events.ts`);
  return found.members;
}

function fieldsOf(members: ts.NodeArray<ts.TypeElement>): Field[] {
  return members.filter(ts.isPropertySignature).map((m) => ({
    name: (m.name as ts.Identifier | ts.StringLiteral).text,
    type: m.type?.getText() ?? "unknown",
    required: m.questionToken === undefined,
  }));
}

/** EventData: event type → its data fields, as declared in the code. */
const CODE_FIELDS = new Map<string, Field[]>(
  interfaceMembers("EventData")
    .filter(ts.isPropertySignature)
    .map((m) => {
      if (!m.type || !ts.isTypeLiteralNode(m.type))
        throw new Error("EventData members must be type literals");
      return [(m.name as ts.StringLiteral).text, fieldsOf(m.type.members)] as const;
    }),
);

// `webhook.test` is not in EventData (nobody emits it); its data is what the test vectors carry.
const vectors = JSON.parse(readFileSync(TEST_VECTORS_PATH, "utf8")) as TestVectors;
const testVector = vectors.positive.find((v) => (v.payload as { event: string }).event === TEST_EVENT);
if (!testVector) throw new Error(`docs/test-vectors.json has no ${TEST_EVENT} vector`);
const TEST_EVENT_FIELDS: Field[] = Object.keys((testVector.payload as { data: object }).data).map((name) => ({
  name,
  type: "string",
  required: true,
}));

const DOCUMENTED_TYPES = [...EVENT_TYPES, TEST_EVENT];

// ---------------------------------------------------------------------------------------------
// Reading the document

interface Fence {
  lang: string;
  text: string;
  offset: number;
}

const FENCES: Fence[] = [...DOC.matchAll(/^```(\w*)\n([\s\S]*?)\n```$/gm)].map((m) => ({
  lang: m[1]!,
  text: m[2]!,
  offset: m.index!,
}));

/** `### \`type\`` sections of "## Event types", each up to the next heading. */
const SECTIONS = new Map<string, string>();
{
  const start = DOC.indexOf("\n## Event types\n");
  const part = DOC.slice(start);
  const headings = [...part.matchAll(/^### `([^`]+)`$/gm)];
  headings.forEach((h, i) => {
    const end = i + 1 < headings.length ? headings[i + 1]!.index! : part.length;
    SECTIONS.set(h[1]!, part.slice(h.index!, end));
  });
}

function tableFields(section: string): Field[] {
  return [...section.matchAll(/^\| `([a-z_]+)` \| `([^`]+)` \| (yes|no) \| [^|]+ \|$/gm)].map((m) => ({
    name: m[1]!,
    type: m[2]!,
    required: m[3] === "yes",
  }));
}

function jsonFences(section: string): string[] {
  return [...section.matchAll(/^```json\n([\s\S]*?)\n```$/gm)].map((m) => m[1]!);
}

function jsType(value: unknown): string {
  if (Array.isArray(value)) return value.every((v) => typeof v === "string") ? "string[]" : "array";
  return value === null ? "null" : typeof value;
}

// ---------------------------------------------------------------------------------------------

describe("docs/EVENTS.md", () => {
  it("reads EventData from src/events.ts: one entry per event type", () => {
    expect([...CODE_FIELDS.keys()].sort()).toEqual([...EVENT_TYPES].sort());
    expect(TEST_EVENT_FIELDS.map((f) => f.name)).toEqual(["message"]);
  });

  it("has exactly one section per event type, and webhook.test", () => {
    expect([...SECTIONS.keys()].sort()).toEqual([...DOCUMENTED_TYPES].sort());
    expect(SECTIONS.size).toBe(12);
  });

  describe.each(DOCUMENTED_TYPES)("%s", (type) => {
    const section = SECTIONS.get(type) ?? "";
    const fields = type === TEST_EVENT ? TEST_EVENT_FIELDS : CODE_FIELDS.get(type)!;

    it("documents each data field with the type and optionality of the code", () => {
      expect(tableFields(section)).toEqual(fields);
    });

    it("states the priority the code assigns", () => {
      expect(/^- Priority: (\w+)/m.exec(section)?.[1]).toBe(defaultPriority(type));
      expect(section).toMatch(/^- Typical frequency: \S/m);
      expect(section).toMatch(/^- De-duplication: \S/m);
    });

    it("shows one example body exactly as sent", () => {
      const examples = jsonFences(section);
      expect(examples).toHaveLength(1);
      const text = examples[0]!;
      const body = JSON.parse(text) as Record<string, unknown>;
      // Byte for byte what the service sends: sorted keys, Python separators, \u escapes.
      expect(canonicalJson(body)).toBe(text);

      expect(Object.keys(body).sort()).toEqual(["created_at", "data", "event", "id", "user_id"]);
      expect(body.event).toBe(type);
      expect(isId(body.id as string, "evt")).toBe(true);
      expect(new Date(body.created_at as string).toISOString()).toBe(body.created_at);
      expect(body.user_id).toEqual(expect.any(String));

      const data = body.data as Record<string, unknown>;
      const names = fields.map((f) => f.name);
      for (const key of Object.keys(data)) expect(names, `undocumented data field ${key}`).toContain(key);
      for (const f of fields) {
        if (f.required) expect(data, `required field ${f.name}`).toHaveProperty(f.name);
        if (f.name in data) expect(jsType(data[f.name]), f.name).toBe(f.type);
      }
    });
  });

  it("gives every example its own event id", () => {
    const ids = DOCUMENTED_TYPES.map(
      (t) => (JSON.parse(jsonFences(SECTIONS.get(t)!)[0]!) as { id: string }).id,
    );
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("lists the envelope fields of WebhookPayload", () => {
    const envelope = fieldsOf(interfaceMembers("WebhookPayload")).map((f) => f.name);
    const body = DOC.slice(DOC.indexOf("### The body"), DOC.indexOf("### Priority"));
    const documented = [...body.matchAll(/^\| `([a-z_]+)` \| `[^`]+` \| [^|]+ \|$/gm)].map((m) => m[1]);
    expect(documented).toEqual(envelope);
  });

  it("shows a delivery whose headers are exactly what the signer sends, and which verifies", () => {
    const http = FENCES.filter((f) => f.lang === "http");
    expect(http).toHaveLength(1);
    const [head, body] = http[0]!.text.split("\n\n") as [string, string];
    const [requestLine, ...headerLines] = head.split("\n");
    expect(requestLine).toBe("POST /webhooks/continuum HTTP/1.1");
    const headers = Object.fromEntries(
      headerLines.map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 2)]),
    );
    expect(canonicalJson(JSON.parse(body))).toBe(body);

    const secret = /example secret `(whsec_[A-Za-z0-9+/=]+)`/.exec(DOC)?.[1];
    expect(secret).toBeDefined();
    const timestamp = Number(headers["X-Continuum-Timestamp"]);
    const expected = signBody({
      secret: secret!,
      body,
      deliveryId: headers["X-Continuum-Delivery"]!,
      timestamp,
      event: headers["X-Continuum-Event"]!,
    });
    expect(headers).toEqual({ ...expected });
    for (const drop of [["webhook-signature"], ["X-Continuum-Signature"]]) {
      const family = Object.fromEntries(Object.entries(headers).filter(([k]) => !drop.includes(k)));
      expect(verifyWebhook({ body, headers: family, secret: secret!, now: timestamp })).toEqual(
        JSON.parse(body),
      );
    }
    // The header table names every header of the request.
    for (const name of Object.keys(headers).filter((h) => h.startsWith("X-Continuum"))) {
      expect(DOC).toContain(`| \`${name}\` |`);
    }
  });

  it("checks every fenced block (json examples and the http request only)", () => {
    const checked = FENCES.filter(
      (f) => f.lang === "http" || (f.lang === "json" && f.offset > DOC.indexOf("## Event types")),
    );
    expect(FENCES.map((f) => f.lang)).toEqual(["http", ...DOCUMENTED_TYPES.map(() => "json")]);
    expect(checked).toHaveLength(FENCES.length);
  });
});

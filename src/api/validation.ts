/**
 * The validators Fastify compiles route schemas with.
 *
 * Fastify's default Ajv coerces types and silently drops unknown properties everywhere. For a
 * JSON body that is wrong: `{"active": "yes"}` or `{"events": "memory.created"}` would be quietly
 * "fixed" and a misspelt field ignored. So bodies get a strict instance (no coercion, unknown
 * fields are errors); the query string and path, which are text by nature, get one that coerces
 * `?limit=20` into a number.
 *
 * Rules the library owns (schemas marked LIBRARY_CHECKED) are not enforced here: the document
 * shows them, the library answers them. Two checkers of one rule drift apart (a length counted
 * in code points by one and UTF-16 units by the other, a 400 from one and a 422 from the other).
 */
import { Ajv, type Options } from "ajv";
import type { FastifySchema, FastifySchemaCompiler } from "fastify";
import type { TSchema } from "typebox";

/** The schema keyword that marks a value the library checks (see schemas.ts). */
export const LIBRARY_CHECKED = "x-library-checked";

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * What the API still checks under a library-checked schema: which fields exist (so a misspelt one
 * is refused with a suggestion rather than ignored), and in the query string the type the text
 * is coerced to, because the library is handed numbers, not text.
 */
const STRUCTURE = new Set(["$id", "$ref", "properties", "additionalProperties", "items"]);
const TEXT_STRUCTURE = new Set([...STRUCTURE, "type", "default"]);

/** `schema` as the request validator enforces it. */
export function enforcedSchema(schema: unknown, text: boolean, library = false): unknown {
  if (Array.isArray(schema)) return schema.map((s) => enforcedSchema(s, text, library));
  if (typeof schema !== "object" || schema === null) return schema;
  const node = schema as Record<string, unknown>;
  const owned = library || node[LIBRARY_CHECKED] === true;
  const keep = text ? TEXT_STRUCTURE : STRUCTURE;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === LIBRARY_CHECKED || (owned && !keep.has(key))) continue;
    if (key === "properties" && typeof value === "object" && value !== null) {
      out[key] = Object.fromEntries(
        Object.entries(value).map(([name, s]) => [name, enforcedSchema(s, text, owned)]),
      );
    } else {
      out[key] = enforcedSchema(value, text, owned);
    }
  }
  return out;
}

function build(options: Options, schemas: readonly TSchema[], text: boolean): Ajv {
  const ajv = new Ajv({
    useDefaults: true,
    removeAdditional: false,
    // One error per request: reporting them all costs time an attacker could make us spend.
    allErrors: false,
    allowUnionTypes: true,
    strictTypes: false,
    // Errors carry their schema and value: the known field names for a suggestion, the id kind.
    verbose: true,
    ...options,
  });
  ajv.addFormat("date-time", {
    type: "string",
    validate: (s: string) => RFC3339.test(s) && !Number.isNaN(Date.parse(s)),
  });
  for (const s of schemas) ajv.addSchema(enforcedSchema(s, text) as object);
  return ajv;
}

export function validatorCompiler(schemas: readonly TSchema[]): FastifySchemaCompiler<FastifySchema> {
  const body = build({ coerceTypes: false }, schemas, false);
  const text = build({ coerceTypes: true }, schemas, true);
  return ({ schema, httpPart }) => {
    if (httpPart !== "body") return text.compile(enforcedSchema(schema, true) as object);
    // That the body is an object is the API's to say whatever the route: the library is handed
    // its fields.
    return body.compile({ allOf: [{ type: "object" }, enforcedSchema(schema, false) as object] });
  };
}

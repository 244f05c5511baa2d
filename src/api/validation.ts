/**
 * The validators Fastify compiles route schemas with.
 *
 * Fastify's default Ajv coerces types and silently drops unknown properties everywhere. For a
 * JSON body that is wrong: `{"active": "yes"}` or `{"events": "memory.created"}` would be quietly
 * "fixed" and a misspelt field ignored. So bodies get a strict instance (no coercion, unknown
 * fields are errors); the query string and path, which are text by nature, get one that coerces
 * `?limit=20` into a number.
 */
import { Ajv, type Options } from "ajv";
import type { FastifySchema, FastifySchemaCompiler } from "fastify";
import type { TSchema } from "typebox";

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

function build(options: Options, schemas: readonly TSchema[]): Ajv {
  const ajv = new Ajv({
    useDefaults: true,
    removeAdditional: false,
    // One error per request: reporting them all costs time an attacker could make us spend.
    allErrors: false,
    allowUnionTypes: true,
    strictTypes: false,
    ...options,
  });
  ajv.addFormat("date-time", {
    type: "string",
    validate: (s: string) => RFC3339.test(s) && !Number.isNaN(Date.parse(s)),
  });
  for (const s of schemas) ajv.addSchema(s);
  return ajv;
}

export function validatorCompiler(schemas: readonly TSchema[]): FastifySchemaCompiler<FastifySchema> {
  const body = build({ coerceTypes: false }, schemas);
  const text = build({ coerceTypes: true }, schemas);
  return ({ schema, httpPart }) => (httpPart === "body" ? body : text).compile(schema as object);
}

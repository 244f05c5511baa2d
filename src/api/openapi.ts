/**
 * The OpenAPI 3.1 document (`/openapi.json`) and the browsable docs (`/docs`), both generated
 * from the route schemas. 3.1 rather than 3.0 because it is plain JSON Schema: `type: ["string",
 * "null"]` means what it says.
 *
 * Error answers are added to each operation here, from the route's shape (auth, body, path
 * parameters, query) and its `config.problems`, so a handler never has to list the obvious ones.
 */
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance, FastifySchema, RouteOptions } from "fastify";
import { ERROR_CODES, type ErrorCode, PROBLEM_TYPE_BASE } from "./errors.js";
import { LIBRARY_CHECKED } from "./validation.js";

const PROBLEM = { $ref: "Problem#" };

/** Methods whose bodies Fastify reads on every route, with a body schema or not. */
const BODY_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function problemResponses(route: RouteOptions, schema: FastifySchema): Record<string, unknown> {
  const codes = new Set<ErrorCode>([
    ...(route.config?.problems ?? []),
    // Any request: a malformed URL or HTTP (400), another method on this path (405), a slow
    // sender (408), oversized headers (431), a bug (500), a shutdown (503).
    "invalid_request",
    "method_not_allowed",
    "request_timeout",
    "headers_too_large",
    "internal_error",
    "unavailable",
  ]);
  const authenticated = route.url.startsWith("/api/");
  if (authenticated) {
    codes.add("unauthorized");
    codes.add("rate_limited");
  }
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  if (methods.some((m) => BODY_METHODS.has(m.toUpperCase()))) {
    // A body sent to a route that takes none is still read, and refused the same way.
    codes.add("invalid_json");
    codes.add("payload_too_large");
    codes.add("unsupported_media_type");
  }
  if (schema.body || schema.querystring || schema.headers) codes.add("invalid_field");
  if (schema.params) codes.add("not_found");

  const byStatus = new Map<number, string[]>();
  for (const code of codes) {
    const { status, title } = ERROR_CODES[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), `\`${code}\`: ${title}`]);
  }
  const out: Record<string, unknown> = {};
  for (const [status, lines] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    out[String(status)] = {
      description: lines.join("; "),
      content: { "application/problem+json": { schema: PROBLEM } },
      ...(RESPONSE_HEADERS[status] ? { headers: RESPONSE_HEADERS[status] } : {}),
    };
  }
  return out;
}

/** Headers as JSON Schemas: @fastify/swagger wraps each in an OpenAPI header object. */
const RESPONSE_HEADERS: Record<number, Record<string, unknown>> = {
  401: { "WWW-Authenticate": { type: "string" } },
  405: { Allow: { type: "string", description: "The methods this path accepts" } },
  429: { "Retry-After": { type: "integer", description: "Seconds to wait" } },
  503: { "Retry-After": { type: "integer", description: "Seconds to wait" } },
};

/** The library-checked marker is the validator's business (validation.ts), not a client's. */
function withoutMarkers(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutMarkers);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([k]) => k !== LIBRARY_CHECKED)
      .map(([k, v]) => [k, withoutMarkers(v)]),
  );
}

/** The whole error registry, so a client can map every `type` it may meet. */
const DESCRIPTION = [
  "Signed, retried, SSRF-safe webhook delivery for CONTINUUM events.",
  "",
  "Authenticate with `Authorization: Bearer <api key>`. Lists page with an opaque `cursor` " +
    "(`next_cursor` is null on the last page). Errors are RFC 9457 `application/problem+json`; " +
    "their `type` is one of:",
  "",
  ...Object.entries(ERROR_CODES).map(
    ([code, { status, title }]) => `- \`${PROBLEM_TYPE_BASE}${code}\` (${status}): ${title}`,
  ),
].join("\n");

/** Call before any route is registered: the document is built from the routes added after it. */
export function registerOpenApi(app: FastifyInstance, version: string): void {
  app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "continuum-webhooks",
        version,
        description: DESCRIPTION,
        license: { name: "MIT", identifier: "MIT" },
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: "http", scheme: "bearer", description: "An API key (`cwk_…`)" },
        },
      },
      tags: [
        { name: "webhooks", description: "Endpoints that receive events" },
        { name: "deliveries", description: "Delivery history and retries" },
        { name: "events", description: "Emitting events" },
        { name: "operations", description: "Health and metrics (no key needed)" },
      ],
    },
    // Shared schemas keep their own names under components.schemas instead of def-0, def-1…
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.$id === "string" ? json.$id : `def-${i}`,
    },
    transformObject: (documentObject) =>
      withoutMarkers(
        "openapiObject" in documentObject ? documentObject.openapiObject : documentObject,
      ) as never,
    transform: ({ schema, url, route }) => {
      if (!schema || schema.hide) return { schema, url };
      const response = { ...(schema.response as Record<string, unknown> | undefined) };
      const merged = { ...problemResponses(route, schema), ...response };
      return { schema: { ...schema, response: merged }, url };
    },
  });
  app.register(swaggerUi, {
    routePrefix: "/docs",
    // The UI and its assets are served from the package; the default validator badge would make
    // every visitor's browser call validator.swagger.io, so it is off.
    uiConfig: { validatorUrl: null, deepLinking: true, tryItOutEnabled: false },
    staticCSP: true,
  });
  app.register(async (scope) => {
    scope.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  });
}

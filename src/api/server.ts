/**
 * The HTTP API: `/api/v1` (authenticated, rate-limited), `/health`, `/metrics`, `/openapi.json`
 * and `/docs`. Every error, from any layer, leaves as `application/problem+json` (errors.ts).
 */
import { isUtf8 } from "node:buffer";
import { createRequire } from "node:module";
import rateLimit from "@fastify/rate-limit";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import type { Config } from "../config.js";
import type { Engine } from "../engine.js";
import type { Logger } from "../logger.js";
import type { Store } from "../store/index.js";
import { ApiKeyAuthenticator, type AuthOptions } from "./auth.js";
import {
  clientErrorHandler,
  errorHandler,
  ProblemError,
  type RegisteredRoute,
  RouteTable,
  sendProblem,
  toProblem,
} from "./errors.js";
import { registerOpenApi } from "./openapi.js";
import { opsRoutes } from "./ops.js";
import { deliveryRoutes } from "./routes/deliveries.js";
import { eventRoutes } from "./routes/events.js";
import { webhookRoutes } from "./routes/webhooks.js";
import { namedSchemas } from "./schemas.js";
import { validatorCompiler } from "./validation.js";

export { checkHealth, type HealthReport } from "./health.js";

export interface RateLimitOptions {
  /** Requests per key per window. Default 600. */
  max: number;
  /** Default 60 000 ms. */
  timeWindowMs: number;
}

export interface ServerDeps {
  store: Store;
  logger: Logger;
  engine: Engine;
  config: Readonly<Config>;
  /** Per API key; `false` turns it off (benchmarks). */
  rateLimit?: RateLimitOptions | false;
  auth?: AuthOptions;
}

export const BODY_LIMIT = 1024 * 1024;

/** A `\uD8xx`–`\uDFxx` escape not in a high+low pair, in JSON text (a cheap pre-check). */
const MAYBE_LONE_SURROGATE =
  /\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}/;
/** An unpaired UTF-16 surrogate in a parsed string. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The field of the first string (a value or a key, in document order) that `bad` picks.
 * Iterative, because a body may nest as deep as 1 MiB allows.
 */
function firstString(value: unknown, bad: (s: string) => boolean): string | undefined {
  type Trail = { key: string | number; up: Trail } | undefined;
  const name = (t: Trail): string => {
    const parts: Array<string | number> = [];
    for (let at = t; at; at = at.up) parts.unshift(at.key);
    let out = "";
    for (const p of parts) out += typeof p === "number" ? `[${p}]` : out === "" ? p : `.${p}`;
    return out || "body";
  };
  const stack: Array<[unknown, Trail]> = [[value, undefined]];
  while (stack.length > 0) {
    const [v, trail] = stack.pop()!;
    if (typeof v === "string") {
      if (bad(v)) return name(trail);
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], { key: i, up: trail }]);
    } else if (typeof v === "object" && v !== null) {
      const entries = Object.entries(v);
      for (const [k] of entries) if (bad(k)) return name({ key: k, up: trail });
      for (let i = entries.length - 1; i >= 0; i--)
        stack.push([entries[i]![1], { key: entries[i]![0], up: trail }]);
    }
  }
  return undefined;
}

function textProblem(field: string | undefined, what: string): ProblemError {
  const fix = "send the text as well-formed UTF-8";
  return field === undefined
    ? new ProblemError("invalid_json", `the body ${what}: ${fix}`)
    : new ProblemError("invalid_json", `${field} ${what}: ${fix}`, [{ field, reason: what }]);
}

/**
 * `/events/batch/` is `/events/batch`, on the API and the worker alike: without this it matched
 * no route, yet the 405 check (errors.ts) recognised the path, and a POST was told "accepts POST".
 */
const ROUTER_OPTIONS = { ignoreTrailingSlash: true };

const routeTables = new WeakMap<FastifyInstance, RouteTable>();

/** Every route a server built here serves (after `ready()`), for tools and the OpenAPI tests. */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return routeTables.get(app)?.list() ?? [];
}

const VERSION = (createRequire(import.meta.url)("../../package.json") as { version: string }).version;

/**
 * What every server of ours shares: problem+json for every error (framework ones included),
 * the named schemas and their validator, trailing slashes, and a route table for 404 and 405.
 */
function baseServer(logger: Logger, extra: { bodyLimit?: number; return503OnClosing?: boolean } = {}) {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: ROUTER_OPTIONS,
    clientErrorHandler,
    // Router-level failures (a malformed percent-encoding in the path) become problems too.
    frameworkErrors: (error, _request, reply) => {
      sendProblem(reply, toProblem(error));
    },
    ...extra,
  }).withTypeProvider<TypeBoxTypeProvider>();
  for (const s of namedSchemas()) app.addSchema(s);
  app.setValidatorCompiler(validatorCompiler(namedSchemas()));
  app.setErrorHandler(errorHandler);
  const routes = new RouteTable();
  app.addHook("onRoute", (r) =>
    routes.add(r.url, r.method, Boolean((r.schema as { hide?: unknown } | undefined)?.hide)),
  );
  routeTables.set(app, routes);
  app.setNotFoundHandler(routes.notFoundHandler);
  return app;
}

export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  // Fastify's own 503-while-closing answer is not problem+json; the onRequest hook below is.
  const app = baseServer(deps.logger, { bodyLimit: BODY_LIMIT, return503OnClosing: false });

  // Only JSON bodies: a text/plain POST is refused with 415 rather than validated as a string.
  app.removeContentTypeParser("text/plain");
  // An empty body with a JSON content type (common from clients of the body-less POST routes)
  // is no body, not a parse error; a route that needs a body still refuses it by its schema.
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, raw, done) => {
    const body = raw as Buffer;
    if (body.length === 0) {
      done(null, undefined);
      return;
    }
    // Decoding replaces each bad byte with U+FFFD, which would be stored as if it had been sent.
    const utf8 = isUtf8(body);
    const text = body.toString("utf8");
    parseJson(request, text, (err, value) => {
      if (!utf8) {
        const field = err ? undefined : firstString(value, (s) => s.includes("\uFFFD"));
        done(textProblem(field, "is not valid UTF-8"));
      } else if (err) {
        done(err);
      } else {
        // JSON.parse keeps a lone surrogate (`"\ud800"`), and storing it would turn it into U+FFFD.
        const field = MAYBE_LONE_SURROGATE.test(text)
          ? firstString(value, (s) => LONE_SURROGATE.test(s))
          : undefined;
        if (field === undefined) done(null, value);
        else
          done(
            textProblem(field, "holds an unpaired surrogate escape (\\uD800 to \\uDFFF without its pair)"),
          );
      }
    });
  });

  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onRequest", async (_request, reply) => {
    if (closing) {
      reply.header("connection", "close");
      throw new ProblemError(
        "unavailable",
        "the server is shutting down; retry on another instance",
        undefined,
        {
          "retry-after": "1",
        },
      );
    }
  });

  // Before any route: the document is built from the routes registered after it.
  registerOpenApi(app, VERSION);

  app.register(opsRoutes, { store: deps.store, engine: deps.engine, logger: deps.logger });

  const authenticator = new ApiKeyAuthenticator(deps.store, deps.logger, deps.auth);
  app.decorateRequest("auth", null);
  app.register(
    async (api) => {
      api.addHook("onRequest", authenticator.hook);
      if (deps.rateLimit !== false) {
        const limit = deps.rateLimit ?? { max: 600, timeWindowMs: 60_000 };
        await api.register(rateLimit, {
          global: true,
          max: limit.max,
          timeWindow: limit.timeWindowMs,
          // Runs after authentication (route hooks follow the scope's), so the bucket is the key.
          keyGenerator: (request) => request.auth?.keyId ?? request.ip,
          errorResponseBuilder: (_request, context) =>
            new ProblemError(
              "rate_limited",
              `at most ${context.max} requests per ${context.after}; retry later`,
            ),
        });
      }
      const routeDeps = { engine: deps.engine, store: deps.store };
      await api.register(webhookRoutes, routeDeps);
      await api.register(deliveryRoutes, routeDeps);
      await api.register(eventRoutes, routeDeps);
    },
    { prefix: "/api/v1" },
  );

  return app;
}

/**
 * The worker's HTTP side: only /health and /metrics, through the same plugin, schemas and
 * problem+json errors as `serve`.
 */
export async function buildOpsServer(
  deps: Pick<ServerDeps, "store" | "logger" | "engine">,
): Promise<FastifyInstance> {
  const app = baseServer(deps.logger);
  await app.register(opsRoutes, deps);
  return app;
}

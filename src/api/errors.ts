/**
 * Every error the API can answer, in one registry: code → HTTP status, title and problem type URI.
 * Responses are RFC 9457 `application/problem+json`. The registry is the only place a status is
 * chosen, so the OpenAPI document, the tests and the handlers cannot drift apart.
 */
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { EmitError } from "../emitter.js";
import { closest } from "../events.js";
import { ManagerError } from "../manager.js";
import { ID_KINDS } from "./schemas.js";

export const PROBLEM_TYPE_BASE = "https://continuum-webhooks.dev/problems/";
export const PROBLEM_CONTENT_TYPE = "application/problem+json; charset=utf-8";

export const ERROR_CODES = {
  invalid_request: { status: 400, title: "The request is not valid" },
  invalid_json: { status: 400, title: "The body is not valid JSON" },
  invalid_cursor: { status: 400, title: "The cursor is not valid" },
  unauthorized: { status: 401, title: "A valid API key is required" },
  forbidden: { status: 403, title: "This API key may not do that" },
  not_found: { status: 404, title: "Not found" },
  method_not_allowed: { status: 405, title: "Method not allowed" },
  request_timeout: { status: 408, title: "The request took too long to arrive" },
  conflict: { status: 409, title: "Conflict" },
  payload_too_large: { status: 413, title: "The body is too large" },
  unsupported_media_type: { status: 415, title: "Unsupported content type" },
  invalid_field: { status: 422, title: "A field is missing, unknown or not valid" },
  unknown_event_type: { status: 422, title: "Unknown event type" },
  invalid_url: { status: 422, title: "The webhook URL is not allowed" },
  rate_limited: { status: 429, title: "Too many requests" },
  headers_too_large: { status: 431, title: "The request headers are too large" },
  internal_error: { status: 500, title: "Internal server error" },
  unavailable: { status: 503, title: "The service is unavailable" },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface FieldError {
  field: string;
  reason: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: FieldError[];
}

/** Thrown by hooks and handlers; the error handler renders it as problem+json. */
export class ProblemError extends Error {
  override name = "ProblemError";
  readonly statusCode: number;
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    readonly errors?: FieldError[],
    readonly headers?: Record<string, string>,
  ) {
    super(detail);
    this.statusCode = ERROR_CODES[code].status;
  }
}

export function problem(code: ErrorCode, detail: string, errors?: FieldError[]): Problem {
  const { status, title } = ERROR_CODES[code];
  return { type: PROBLEM_TYPE_BASE + code, title, status, detail, ...(errors?.length ? { errors } : {}) };
}

export function sendProblem(reply: FastifyReply, p: Problem, headers?: Record<string, string>): FastifyReply {
  if (headers) reply.headers(headers);
  // Serialized here rather than through a route's response schema: an error must render the
  // same way whichever route (or no route) it came from.
  return reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(p));
}

/** Fastify's own errors that malformed input can cause, and what they mean to a client. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: "invalid_json",
  FST_ERR_CTP_EMPTY_JSON_BODY: "invalid_json",
  FST_ERR_CTP_BODY_TOO_LARGE: "payload_too_large",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "invalid_request",
  FST_ERR_BAD_URL: "invalid_request",
  FST_ERR_ASYNC_CONSTRAINT: "invalid_request",
  FST_ERR_MAX_PARAM_LENGTH: "invalid_request",
};

const FASTIFY_DETAILS: Partial<Record<ErrorCode, string>> = {
  invalid_json: "the body must be a well-formed JSON document",
  payload_too_large: "the body must be at most 1 MiB",
  unsupported_media_type: "send the body as application/json",
  not_found: "no such resource",
};

/** Fixed wording for the invalid_request ones: their own messages quote the URL back. */
const FASTIFY_MESSAGES: Record<string, string> = {
  FST_ERR_BAD_URL: "the request URL is malformed",
  FST_ERR_MAX_PARAM_LENGTH:
    "a path parameter is longer than any id: ids look like whk_ followed by 26 characters",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "Content-Length does not match the body",
  FST_ERR_ASYNC_CONSTRAINT: "the request is malformed",
};

interface AjvLikeError {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
  /** With Ajv's `verbose` (validation.ts): the schema holding the keyword, and the value. */
  parentSchema?: Record<string, unknown>;
  data?: unknown;
}

/** `/events/0/event` → `events[0].event`: the way a client names the field in its own code. */
export function fieldName(pointer: string, child?: string): string {
  const parts = pointer.split("/").slice(1);
  if (child !== undefined) parts.push(child);
  let out = "";
  for (const raw of parts) {
    const part = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    out += /^\d+$/.test(part) ? `[${part}]` : out === "" ? part : `.${part}`;
  }
  return out;
}

/**
 * Names people reach for from other webhook APIs, and the field meant. Used only when that field
 * exists where the unknown one was sent; plain typos are found by edit distance.
 */
const FIELD_ALIASES: Record<string, string> = {
  enabled: "active",
  disabled: "active",
  is_active: "active",
  paused: "active",
  endpoint: "url",
  uri: "url",
  target: "url",
  webhook_url: "url",
  callback_url: "url",
  event_types: "events",
  types: "events",
  topics: "events",
  subscriptions: "events",
  type: "event",
  event_type: "event",
  payload: "data",
  body: "data",
  user: "user_id",
  owner: "user_id",
  title: "name",
  label: "name",
  retries: "retry_schedule",
  backoff: "retry_schedule",
  retry_policy: "retry_schedule",
  dedupe_key: "idempotency_key",
  idempotencykey: "idempotency_key",
};

/** Fields the service sets itself: sending one is a misunderstanding, not a typo. */
const SERVICE_FIELDS: Record<string, string> = {
  secret:
    "is made by the service, not sent: the answer to create shows the signing secret, and POST /api/v1/webhooks/{id}/rotate-secret replaces it",
  id: "is given by the service, not sent",
  created_at: "is set by the service, not sent",
  updated_at: "is set by the service, not sent",
};

/** The fields of one event, for a batch whose events were sent at its top level. */
const EVENT_FIELDS = ["event", "user_id", "data", "priority", "idempotency_key"];

function unknownFieldReason(name: string, known: readonly string[]): string {
  const listed = known.length > 0 ? `; the fields here are ${known.join(", ")}` : "";
  const service = Object.hasOwn(SERVICE_FIELDS, name) ? SERVICE_FIELDS[name] : undefined;
  if (service) return service;
  // Only an update lists url without user_id.
  if (name === "user_id" && known.includes("url")) {
    return `cannot be changed: a webhook keeps the user it was created for${listed}`;
  }
  if (known.length === 1 && known[0] === "events" && EVENT_FIELDS.includes(name)) {
    return 'belongs inside each event: send {"events": [{"event": …, "data": {…}}, …]}';
  }
  const lower = name.toLowerCase();
  const alias = Object.hasOwn(FIELD_ALIASES, lower) ? FIELD_ALIASES[lower] : undefined;
  const near = alias !== undefined && known.includes(alias) ? alias : closest(name, known);
  return `is not a known field${near ? `; did you mean \`${near}\`?` : ""}${listed}`;
}

const TYPE_WORDS: Record<string, string> = {
  string: "a string",
  integer: "a whole number",
  number: "a number",
  boolean: "true or false",
  object: "a JSON object",
  array: "a JSON array",
  null: "null",
};

function typeReason(type: unknown): string {
  const types = (Array.isArray(type) ? type : String(type).split(",")).map(String);
  return `must be ${types.map((t) => TYPE_WORDS[t] ?? t).join(" or ")}`;
}

/**
 * A malformed id in the path, described by its shape rather than by the pattern's regex, and
 * named when it is another kind of id (a delivery id where a webhook id belongs).
 */
function idReason(pattern: unknown, value: unknown): string | undefined {
  const kind = ID_KINDS.find((k) => k.pattern === pattern);
  if (!kind) return undefined;
  let reason = `is not a ${kind.noun} id: ${kind.noun} ids look like ${kind.prefix}_ followed by 26 characters (digits and capital letters), as the API returned them`;
  if (typeof value === "string") {
    const other = ID_KINDS.find((k) => k !== kind && value.startsWith(`${k.prefix}_`));
    if (other) reason += `; ${other.prefix}_… is a ${other.noun} id`;
    else if (new RegExp(kind.pattern).test(value.toUpperCase().replace(/^[A-Z]+_/, `${kind.prefix}_`)))
      reason += "; ids are case-sensitive";
  }
  return reason;
}

function reasonFor(e: AjvLikeError): string {
  switch (e.keyword) {
    case "type":
      return typeReason(e.params?.type);
    case "format":
      return e.params?.format === "date-time"
        ? "must be an ISO 8601 time such as 2026-01-15T09:30:00Z"
        : `must be a ${String(e.params?.format)}`;
    case "pattern":
      // The regex means nothing to most readers.
      return idReason(e.params?.pattern, e.data) ?? "is not in the expected form";
    case "enum":
      return `must be one of ${(e.params?.allowedValues as unknown[] | undefined)?.join(", ") ?? "the documented values"}`;
    default:
      return (e.message ?? "is not valid").replace(/^must NOT/, "must not");
  }
}

const WHERE: Record<string, string> = {
  body: "",
  querystring: "query parameter ",
  params: "path parameter ",
  headers: "header ",
};

/**
 * A request the validator refused. A problem in the path (an id of the wrong shape) or with the
 * body as a whole (not a JSON object) is 400 `invalid_request`; a problem with a named field or
 * query parameter is 422 `invalid_field`, as the library answers its own field checks.
 */
function validationProblem(error: FastifyError): Problem {
  const where = error.validationContext ?? "body";
  const errors: FieldError[] = [];
  let whole = false;
  for (const e of (error.validation ?? []) as AjvLikeError[]) {
    const path = e.instancePath ?? "";
    let field: string;
    let reason: string;
    if (e.keyword === "required" && typeof e.params?.missingProperty === "string") {
      field = fieldName(path, e.params.missingProperty);
      reason = "is required";
    } else if (e.keyword === "additionalProperties" && typeof e.params?.additionalProperty === "string") {
      field = fieldName(path, e.params.additionalProperty);
      const properties = e.parentSchema?.properties;
      const known = typeof properties === "object" && properties !== null ? Object.keys(properties) : [];
      reason = unknownFieldReason(e.params.additionalProperty, known);
    } else {
      field = fieldName(path);
      reason = reasonFor(e);
    }
    if (field === "") {
      field = where;
      whole = true;
      if (where === "body" && e.keyword === "type") reason = "must be a JSON object";
    }
    if (!errors.some((x) => x.field === field)) errors.push({ field, reason });
  }
  const first = errors[0];
  const detail = first
    ? `${whole ? "the " : (WHERE[where] ?? "")}${first.field} ${first.reason}`
    : `the ${where} is not valid`;
  return problem(whole || where === "params" ? "invalid_request" : "invalid_field", detail, errors);
}

/** Library errors (nothing was written when they are thrown) mapped onto the registry. */
export function domainProblem(err: unknown): Problem | null {
  if (err instanceof ManagerError) {
    // The manager's codes are the registry's: a library caller and an API client read one code.
    const code: ErrorCode = err.code;
    if (code === "not_found") return problem(code, err.message);
    return problem(code, err.message, [{ field: err.field ?? "body", reason: err.message }]);
  }
  if (err instanceof EmitError) {
    const item = err.index === undefined ? undefined : `events[${err.index}]`;
    const field = item === undefined ? err.field || "body" : err.field ? `${item}.${err.field}` : item;
    return problem(err.code === "unknown_event" ? "unknown_event_type" : "invalid_field", err.message, [
      { field, reason: err.reason },
    ]);
  }
  return null;
}

export function toProblem(error: unknown): Problem {
  if (error instanceof ProblemError) return problem(error.code, error.detail, error.errors);
  const domain = domainProblem(error);
  if (domain) return domain;
  const fe = error as Partial<FastifyError>;
  if (fe.validation) return validationProblem(fe as FastifyError);
  const mapped = fe.code === undefined ? undefined : FASTIFY_CODES[fe.code];
  if (mapped) {
    return problem(
      mapped,
      FASTIFY_MESSAGES[fe.code ?? ""] ?? FASTIFY_DETAILS[mapped] ?? ERROR_CODES[mapped].title,
    );
  }
  const status = typeof fe.statusCode === "number" ? fe.statusCode : 500;
  if (status >= 400 && status < 500) {
    // A client error we have no entry for: say what HTTP says, never the message, which may
    // come from a dependency and describe our internals.
    const title = STATUS_CODES[status] ?? "Client error";
    return { type: `${PROBLEM_TYPE_BASE}invalid_request`, title, status, detail: title };
  }
  const storage = storageUnavailable(error);
  if (storage) return problem("unavailable", storage);
  return problem("internal_error", "an unexpected error occurred; it has been logged");
}

/** Connection-level failures of either store: the statement may or may not have been applied. */
const CONNECTION_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "SQLITE_BUSY",
  "SQLITE_LOCKED",
  "SQLITE_IOERR",
]);
const CONNECTION_MESSAGE =
  /Connection terminated|connection timeout|Query read timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i;

/**
 * A request that failed because the database could not be reached or went away mid-statement
 * (a commit whose connection dropped may have landed): 503, telling the producer to retry with
 * the same idempotency key, which makes the retry safe either way. A full disk says so.
 */
function storageUnavailable(error: unknown): string | null {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = String((e as { code?: unknown }).code ?? "");
    if (code === "SQLITE_FULL" || code === "53100" || (e as NodeJS.ErrnoException).code === "ENOSPC") {
      return "the database's disk is full: nothing more can be stored until space is freed; retry then, with the same idempotency_key";
    }
    // Class 08 (connection exception), 57P01-57P03 (server shutting down or not yet up).
    if (CONNECTION_CODES.has(code) || /^08|^57P0[1-3]$/.test(code) || CONNECTION_MESSAGE.test(e.message)) {
      return "the database did not answer; the request may or may not have been applied: retry it (an emit with the same idempotency_key, which makes the retry safe)";
    }
  }
  return null;
}

export function errorHandler(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  const p = toProblem(error);
  if (p.status >= 500) {
    request.log.error(
      { err: error, url: request.routeOptions.url, method: request.method },
      "request failed",
    );
  }
  const headers =
    error instanceof ProblemError ? error.headers : p.status === 503 ? { "retry-after": "1" } : undefined;
  return sendProblem(reply, p, headers);
}

/**
 * Knows every registered route (fed by an onRoute hook) so that a known path asked with the wrong
 * method answers 405 with `Allow`, and only a truly unknown path answers 404.
 */
export class RouteTable {
  readonly #routes = new Map<string, { pattern: RegExp; methods: Set<string> }>();
  readonly #list: RegisteredRoute[] = [];

  add(url: string, method: string | string[], hidden: boolean): void {
    let entry = this.#routes.get(url);
    if (!entry) {
      const source = url
        .split("/")
        .map((seg) =>
          seg === "*" ? ".*" : seg.startsWith(":") ? "[^/]+" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
        )
        .join("/");
      entry = { pattern: new RegExp(`^${source}/?$`), methods: new Set() };
      this.#routes.set(url, entry);
    }
    for (const m of Array.isArray(method) ? method : [method]) {
      entry.methods.add(m.toUpperCase());
      this.#list.push({ method: m.toUpperCase(), url, hidden });
    }
  }

  /** Every route served, in registration order. */
  list(): readonly RegisteredRoute[] {
    return this.#list;
  }

  allowed(path: string): string[] {
    const methods = new Set<string>();
    for (const { pattern, methods: ms } of this.#routes.values()) {
      if (pattern.test(path)) for (const m of ms) methods.add(m);
    }
    return [...methods].sort();
  }

  notFoundHandler = (request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const path = (request.url.split("?")[0] ?? "").slice(0, 200);
    const allow = this.allowed(path);
    if (allow.length > 0) {
      return sendProblem(reply, problem("method_not_allowed", `${path} accepts ${allow.join(", ")}`), {
        allow: allow.join(", "),
      });
    }
    return sendProblem(reply, problem("not_found", `no route ${request.method} ${path}`));
  };
}

export interface RegisteredRoute {
  method: string;
  url: string;
  /** Left out of the OpenAPI document (the documentation's own routes). */
  hidden: boolean;
}

/**
 * Bytes Node's HTTP parser rejects never become a request, so no Fastify handler sees them; this
 * answers them as a problem too, then drops the connection (as Node and Fastify do).
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const p =
    err.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? problem("request_timeout", "the request was not received in time")
      : err.code === "HPE_HEADER_OVERFLOW"
        ? problem("headers_too_large", "the request headers exceed the server's limit")
        : problem("invalid_request", "the request is not valid HTTP/1.1");
  const body = JSON.stringify(p);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${p.status} ${STATUS_CODES[p.status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

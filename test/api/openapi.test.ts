import SwaggerParser from "@apidevtools/swagger-parser";
import type { OpenAPIV3_1 } from "openapi-types";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CODES, PROBLEM_TYPE_BASE } from "../../src/api/errors.js";
import { registeredRoutes } from "../../src/api/server.js";
import { startApi, type TestApi } from "./helpers.js";
import { WEBHOOK_CASES } from "./malformed-cases.js";
import { EVENT_CASES } from "./malformed-cases-events.js";

let api: TestApi;
let doc: OpenAPIV3_1.Document;

beforeAll(async () => {
  api = await startApi();
  const res = await api.app.inject({ method: "GET", url: "/openapi.json" });
  expect(res.statusCode).toBe(200);
  doc = res.json() as OpenAPIV3_1.Document;
});

afterAll(async () => {
  await api?.cleanup();
});

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;

function operations(): Array<{ method: string; path: string; op: OpenAPIV3_1.OperationObject }> {
  const out: Array<{ method: string; path: string; op: OpenAPIV3_1.OperationObject }> = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const m of METHODS) {
      const op = item?.[m];
      if (op) out.push({ method: m.toUpperCase(), path, op });
    }
  }
  return out;
}

/** `/api/v1/webhooks/:id/retry/:delivery_id` → `/api/v1/webhooks/{id}/retry/{delivery_id}` */
const toOpenApiPath = (url: string) => url.replace(/:([A-Za-z_]+)/g, "{$1}");

describe("the OpenAPI document", () => {
  it("is valid OpenAPI 3.1", async () => {
    expect(doc.openapi).toBe("3.1.0");
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeTruthy();
  });

  it("lists every route the server registers, and nothing else", () => {
    const registered = registeredRoutes(api.app);
    // HEAD routes are Fastify's automatic twins of the GETs.
    const served = registered
      .filter((r) => !r.hidden && r.method !== "HEAD")
      .map((r) => `${r.method} ${toOpenApiPath(r.url)}`);
    const documented = operations().map((o) => `${o.method} ${o.path}`);
    expect(documented.sort()).toEqual([...new Set(served)].sort());
    expect(served).toHaveLength(15);
    // The only undocumented routes are the documentation's own.
    const hidden = registered.filter((r) => r.hidden).map((r) => r.url);
    expect(hidden.length).toBeGreaterThan(0);
    for (const url of hidden) expect(url).toMatch(/^\/(docs|openapi\.json)/);
  });

  it("covers every route of the specification", () => {
    const documented = new Set(operations().map((o) => `${o.method} ${o.path}`));
    for (const route of [
      "POST /api/v1/webhooks",
      "GET /api/v1/webhooks",
      "GET /api/v1/webhooks/{id}",
      "PATCH /api/v1/webhooks/{id}",
      "DELETE /api/v1/webhooks/{id}",
      "POST /api/v1/webhooks/{id}/test",
      "GET /api/v1/webhooks/{id}/deliveries",
      "GET /api/v1/webhooks/{id}/deliveries/{delivery_id}",
      "POST /api/v1/webhooks/{id}/retry/{delivery_id}",
      "GET /api/v1/webhooks/{id}/stats",
      "POST /api/v1/webhooks/{id}/rotate-secret",
      "POST /api/v1/events",
      "POST /api/v1/events/batch",
      "GET /health",
      "GET /metrics",
    ]) {
      expect(documented, route).toContain(route);
    }
  });

  it("names the shared schemas", () => {
    const names = Object.keys(doc.components?.schemas ?? {});
    for (const name of [
      "CreateWebhookRequest",
      "UpdateWebhookRequest",
      "WebhookResponse",
      "DeliveryResponse",
      "StatsResponse",
      "EmitEventRequest",
      "BatchEmitRequest",
      "Problem",
    ]) {
      expect(names).toContain(name);
    }
  });

  it("puts bearer auth on every /api/v1 operation and none on health and metrics", () => {
    expect(doc.components?.securitySchemes?.bearerAuth).toEqual(
      expect.objectContaining({ type: "http", scheme: "bearer" }),
    );
    for (const { path, op } of operations()) {
      if (path.startsWith("/api/v1/")) {
        expect(op.security, path).toEqual([{ bearerAuth: [] }]);
        expect(Object.keys(op.responses ?? {}), path).toEqual(expect.arrayContaining(["401", "429"]));
      } else {
        expect(op.security, path).toEqual([]);
      }
    }
  });

  it("gives every operation a success schema, a body schema when it takes one, and problem+json errors", () => {
    for (const { method, path, op } of operations()) {
      const responses = op.responses ?? {};
      const success = Object.keys(responses).filter((s) => s.startsWith("2"));
      expect(success.length, `${method} ${path}`).toBeGreaterThan(0);
      for (const [status, r] of Object.entries(responses)) {
        const content = (r as OpenAPIV3_1.ResponseObject).content;
        // /health answers its report (not a problem) with 503.
        if (Number(status) >= 400 && path !== "/health") {
          expect(content?.["application/problem+json"]?.schema, `${method} ${path} ${status}`).toEqual({
            $ref: "#/components/schemas/Problem",
          });
        }
      }
      if (["POST", "PATCH"].includes(method) && path.match(/\/(webhooks|events|batch)$|\{id\}$/)) {
        const body = (op.requestBody as OpenAPIV3_1.RequestBodyObject | undefined)?.content?.[
          "application/json"
        ]?.schema;
        expect(body, `${method} ${path}`).toEqual({
          $ref: expect.stringMatching(/^#\/components\/schemas\/\w+Request$/),
        });
      }
    }
  });

  it("describes every problem type of the error registry", () => {
    const description = doc.info.description ?? "";
    for (const code of Object.keys(ERROR_CODES)) expect(description).toContain(`${PROBLEM_TYPE_BASE}${code}`);
    const statuses = new Set(operations().flatMap((o) => Object.keys(o.op.responses ?? {})));
    for (const status of [
      "400",
      "401",
      "403",
      "404",
      "405",
      "408",
      "409",
      "413",
      "415",
      "422",
      "429",
      "431",
      "500",
      "503",
    ]) {
      expect(statuses).toContain(status);
    }
  });
});

describe("the statuses the document lists", () => {
  /** The documented path a request URL falls on (a trailing slash names the same route). */
  function documentedPath(url: string): string | undefined {
    const path = url.split("?")[0]!;
    return Object.keys(doc.paths ?? {}).find((p) =>
      new RegExp(`^${p.replace(/\{[^}]+\}/g, "[^/]+")}/?$`).test(path),
    );
  }

  it("include, on each route, every status the malformed-request tests see it send", () => {
    const missing: string[] = [];
    let checked = 0;
    for (const c of [...WEBHOOK_CASES, ...EVENT_CASES]) {
      const url = c.url
        .replace("$HOOKCURSOR", "cursor")
        .replace("$HOOK", "whk_01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .replace("$DLV", "dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV");
      const path = documentedPath(url);
      if (path === undefined) {
        // Only a path the API does not have answers without a route to document it on.
        expect(c.status, c.name).toBe(404);
        continue;
      }
      const item = doc.paths?.[path] ?? {};
      const op = item[c.method.toLowerCase() as (typeof METHODS)[number]];
      // A method the path does not take (405) is documented on each of the path's operations.
      const ops = op ? [op] : METHODS.flatMap((m) => (item[m] ? [item[m]!] : []));
      for (const o of ops) {
        checked++;
        if (!(String(c.status) in (o.responses ?? {}))) {
          missing.push(`${c.method} ${path}: ${c.status} (${c.name})`);
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
    expect(missing).toEqual([]);
  });

  it("include what any request may meet, and what a body may meet on every route that reads one", () => {
    for (const { method, path, op } of operations()) {
      const statuses = Object.keys(op.responses ?? {});
      // Malformed HTTP or URL, another method, a slow sender, oversized headers, a bug, a shutdown.
      expect(statuses, `${method} ${path}`).toEqual(
        expect.arrayContaining(["400", "405", "408", "431", "500", "503"]),
      );
      if (["POST", "PATCH", "PUT", "DELETE"].includes(method)) {
        expect(statuses, `${method} ${path}`).toEqual(expect.arrayContaining(["400", "413", "415"]));
      }
    }
    const allow = (doc.paths?.["/api/v1/events"]?.post?.responses?.["405"] as OpenAPIV3_1.ResponseObject)
      ?.headers?.Allow;
    expect(allow).toBeTruthy();
  });

  it("show the library's limits without the validator's marker", () => {
    const text = JSON.stringify(doc);
    expect(text).not.toContain("x-library-checked");
    const create = doc.components?.schemas?.CreateWebhookRequest as OpenAPIV3_1.SchemaObject;
    expect(create.properties?.name).toMatchObject({ type: ["string", "null"], maxLength: 100 });
    expect(create.properties?.events).toMatchObject({ minItems: 1, maxItems: 20 });
    const emit = doc.components?.schemas?.EmitEventRequest as OpenAPIV3_1.SchemaObject;
    expect(emit.properties?.event).toMatchObject({ enum: expect.arrayContaining(["memory.created"]) });
  });
});

describe("/docs", () => {
  it("serves the Swagger UI as HTML, with its assets from this server", async () => {
    const res = await api.app.inject({ method: "GET", url: "/docs" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/html/);
    expect(res.body).toContain("swagger-ui");
    expect(res.body).not.toMatch(/(src|href)="https?:\/\//);
    const assets = [...res.body.matchAll(/(?:src|href)="([^"]+\.(?:js|css|png))"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThan(0);
    for (const asset of assets) {
      const url = asset.startsWith("/") ? asset : `/docs/${asset}`;
      const a = await api.app.inject({ method: "GET", url });
      expect(a.statusCode, url).toBe(200);
    }
    // No call to validator.swagger.io from the visitor's browser.
    const init = await api.app.inject({ method: "GET", url: "/docs/static/swagger-initializer.js" });
    expect(init.body).toContain('"validatorUrl":null');
    const spec = await api.app.inject({ method: "GET", url: "/docs/json" });
    expect(spec.json()).toEqual(doc);
  });
});

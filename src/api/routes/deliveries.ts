/** `/api/v1/webhooks/{id}/deliveries` and `/retry`: a webhook's delivery history, one delivery, retry. */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { DeliveryView } from "../../views.js";
import { scope } from "../auth.js";
import { ProblemError } from "../errors.js";
import {
  DeliveryDetailResponse,
  DeliveryListResponse,
  DeliveryParams,
  DeliveryResponse,
  ListDeliveriesQuery,
  ref,
  WebhookParams,
} from "../schemas.js";
import type { RouteDeps } from "./deps.js";

const TAGS = ["deliveries"];
const SECURITY = [{ bearerAuth: [] }];

/** Stored times are UTC ISO strings compared as text, so a `+02:00` bound is normalized first. */
function utc(value: string | undefined, field: string): string | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms))
    throw new ProblemError("invalid_field", `query parameter ${field} is not a valid time`, [
      { field, reason: "must be an ISO 8601 time such as 2026-01-15T09:30:00Z" },
    ]);
  return new Date(ms).toISOString();
}

export const deliveryRoutes: FastifyPluginAsyncTypebox<RouteDeps> = async (app, { engine }) => {
  const { manager } = engine;

  app.get(
    "/webhooks/:id/deliveries",
    {
      schema: {
        summary: "Delivery history",
        description:
          "Newest first; filter by status, event type and creation time (`since` ≤ created_at < `until`).",
        tags: TAGS,
        security: SECURITY,
        params: WebhookParams,
        querystring: ListDeliveriesQuery,
        response: { 200: ref(DeliveryListResponse) },
      },
      config: { problems: ["invalid_cursor", "invalid_field"] },
    },
    async (request) => {
      const q = request.query;
      return manager.deliveries(scope(request), request.params.id, {
        // The manager checks it (the schema lists the values for the document only).
        status: q.status as DeliveryView["status"] | undefined,
        event: q.event,
        since: utc(q.since, "since"),
        until: utc(q.until, "until"),
        limit: q.limit,
        cursor: q.cursor,
      });
    },
  );

  app.get(
    "/webhooks/:id/deliveries/:delivery_id",
    {
      schema: {
        summary: "One delivery, with its payload and every attempt",
        tags: TAGS,
        security: SECURITY,
        params: DeliveryParams,
        response: { 200: ref(DeliveryDetailResponse) },
      },
    },
    async (request) => manager.delivery(scope(request), request.params.id, request.params.delivery_id),
  );

  app.post(
    "/webhooks/:id/retry/:delivery_id",
    {
      schema: {
        summary: "Deliver a finished delivery again, now",
        description: "Queues the delivery with its original payload and id. 409 while it is still pending.",
        tags: TAGS,
        security: SECURITY,
        params: DeliveryParams,
        response: { 202: ref(DeliveryResponse) },
      },
      config: { problems: ["conflict"] },
    },
    async (request, reply) => {
      const d = await manager.retry(scope(request), request.params.id, request.params.delivery_id);
      return reply.code(202).send(d);
    },
  );
};

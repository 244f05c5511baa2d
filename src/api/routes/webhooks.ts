/** `/api/v1/webhooks`: create, list, read, update, delete, test, rotate-secret, stats. */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import type { WebhookInput } from "../../manager.js";
import { webhookStats } from "../../stats.js";
import { actingUser, scope } from "../auth.js";
import {
  CreateWebhookRequest,
  ListWebhooksQuery,
  ref,
  StatsResponse,
  TestWebhookResponse,
  UpdateWebhookRequest,
  WebhookListResponse,
  WebhookParams,
  WebhookResponse,
} from "../schemas.js";
import type { RouteDeps } from "./deps.js";

const TAGS = ["webhooks"];
const SECURITY = [{ bearerAuth: [] }];

export const webhookRoutes: FastifyPluginAsyncTypebox<RouteDeps> = async (app, { engine, store }) => {
  const { manager } = engine;

  app.post(
    "/webhooks",
    {
      schema: {
        summary: "Create a webhook",
        description: "The answer shows the signing secret whole, this once.",
        tags: TAGS,
        security: SECURITY,
        body: ref(CreateWebhookRequest),
        response: { 201: ref(WebhookResponse) },
      },
      config: { problems: ["forbidden", "conflict", "invalid_url", "unknown_event_type", "invalid_field"] },
    },
    async (request, reply) => {
      // The manager checks every field (the schema only that no unknown one came along).
      const { user_id, ...input } = request.body as Record<string, unknown>;
      const owner = actingUser(request, user_id);
      const { webhook, secret } = await manager.create(owner, input as unknown as WebhookInput);
      return reply
        .code(201)
        .header("location", `/api/v1/webhooks/${webhook.id}`)
        .send({ ...webhook, secret });
    },
  );

  app.get(
    "/webhooks",
    {
      schema: {
        summary: "List webhooks",
        description:
          "Oldest first. A user key lists its own; an admin key lists everyone's, or one user's with `user_id`.",
        tags: TAGS,
        security: SECURITY,
        querystring: ListWebhooksQuery,
        response: { 200: ref(WebhookListResponse) },
      },
      config: { problems: ["forbidden", "invalid_cursor", "invalid_field"] },
    },
    async (request) => {
      const { limit, cursor, user_id } = request.query;
      const auth = request.auth!;
      const owner = auth.role === "admin" && user_id === undefined ? undefined : actingUser(request, user_id);
      return manager.list(owner, { limit, cursor });
    },
  );

  app.get(
    "/webhooks/:id",
    {
      schema: {
        summary: "Get a webhook",
        tags: TAGS,
        security: SECURITY,
        params: WebhookParams,
        response: { 200: ref(WebhookResponse) },
      },
    },
    async (request) => manager.get(scope(request), request.params.id),
  );

  app.patch(
    "/webhooks/:id",
    {
      schema: {
        summary: "Update a webhook",
        description:
          "Only the fields sent change. A new `url` is checked again; `active: false` pauses deliveries.",
        tags: TAGS,
        security: SECURITY,
        params: WebhookParams,
        body: ref(UpdateWebhookRequest),
        response: { 200: ref(WebhookResponse) },
      },
      config: { problems: ["conflict", "invalid_url", "unknown_event_type", "invalid_field"] },
    },
    async (request) =>
      manager.update(scope(request), request.params.id, request.body as Partial<WebhookInput>),
  );

  app.delete(
    "/webhooks/:id",
    {
      schema: {
        summary: "Delete a webhook and its delivery history",
        tags: TAGS,
        security: SECURITY,
        params: WebhookParams,
        response: { 204: Type.Null({ description: "Deleted" }) },
      },
    },
    async (request, reply) => {
      await manager.delete(scope(request), request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    "/webhooks/:id/test",
    {
      schema: {
        summary: "Send a webhook.test event now",
        description:
          "Delivered at once, outside the queue and never retried; recorded in the delivery history. " +
          "The answer says what the endpoint did.",
        tags: TAGS,
        security: SECURITY,
        params: WebhookParams,
        response: { 200: ref(TestWebhookResponse) },
      },
    },
    async (request) => manager.test(scope(request), request.params.id),
  );

  app.post(
    "/webhooks/:id/rotate-secret",
    {
      schema: {
        summary: "Rotate the signing secret",
        description:
          "The answer shows the new secret whole, this once. The old secret stays valid for 24 h: deliveries carry both signatures meanwhile.",
        tags: TAGS,
        security: SECURITY,
        params: WebhookParams,
        response: { 200: ref(WebhookResponse) },
      },
    },
    async (request) => {
      const { webhook, secret } = await manager.rotateSecret(scope(request), request.params.id);
      return { ...webhook, secret };
    },
  );

  app.get(
    "/webhooks/:id/stats",
    {
      schema: {
        summary: "Delivery statistics",
        description:
          "Totals by status, success rate and attempt durations: all time, last 24 h, last 7 days.",
        tags: TAGS,
        security: SECURITY,
        params: WebhookParams,
        response: { 200: ref(StatsResponse) },
      },
    },
    async (request) => {
      // Resolving the webhook through the manager first is what scopes stats to its owner.
      const webhook = await manager.get(scope(request), request.params.id);
      return webhookStats(store, webhook.id, engine.clock.now());
    },
  );
};

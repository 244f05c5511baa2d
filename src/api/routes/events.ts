/**
 * `POST /api/v1/events` and `/events/batch`. This is the hot path: one cached key lookup, one
 * schema check, one transaction in the emitter, nothing else.
 *
 * Single events go through a CoalescingEmitter (group commit, see ingest.ts).
 *
 * An idempotent replay answers exactly like the first request (202, the same id and count) with
 * `duplicate: true` in the body and an `Idempotent-Replayed: true` header, so a client that only
 * looks at the status code still does the right thing.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { EmitInput } from "../../emitter.js";
import { isEventType } from "../../events.js";
import { actingUser } from "../auth.js";
import { ProblemError } from "../errors.js";
import { CoalescingEmitter } from "../ingest.js";
import {
  BatchEmitRequest,
  BatchEmitResponse,
  EmitEventRequest,
  EmitEventResponse,
  EmitHeaders,
  ref,
} from "../schemas.js";
import type { RouteDeps } from "./deps.js";

const TAGS = ["events"];
const SECURITY = [{ bearerAuth: [] }];

export const eventRoutes: FastifyPluginAsyncTypebox<RouteDeps> = async (app, { engine }) => {
  const { emitter } = engine;
  const single = new CoalescingEmitter(emitter);

  app.post(
    "/events",
    {
      schema: {
        summary: "Emit an event",
        description:
          "Writes the event and one delivery per active webhook of the user subscribed to its type, in one " +
          "transaction, before answering. The idempotency key may come in the body or the `Idempotency-Key` header.",
        tags: TAGS,
        security: SECURITY,
        headers: EmitHeaders,
        body: ref(EmitEventRequest),
        response: { 202: ref(EmitEventResponse) },
      },
      config: { problems: ["forbidden", "unknown_event_type"] },
    },
    async (request, reply) => {
      const body = request.body;
      const header = request.headers["idempotency-key"];
      if (header !== undefined && body.idempotency_key !== undefined && header !== body.idempotency_key) {
        throw new ProblemError("invalid_request", "the Idempotency-Key header and idempotency_key differ", [
          { field: "idempotency_key", reason: "must equal the Idempotency-Key header when both are sent" },
        ]);
      }
      // Refused here rather than by the emitter, so a grouped transaction rarely has to be retried.
      if (!isEventType(body.event)) {
        throw new ProblemError("unknown_event_type", `unknown event type ${JSON.stringify(body.event)}`, [
          { field: "event", reason: "must be one of the documented event types" },
        ]);
      }
      const idempotencyKey = body.idempotency_key ?? header;
      const result = await single.emit({
        event: body.event,
        userId: actingUser(request, body.user_id),
        data: body.data,
        ...(body.priority === undefined ? {} : { priority: body.priority }),
        ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
      });
      if (result.duplicate) reply.header("idempotent-replayed", "true");
      return reply.code(202).send(result);
    },
  );

  app.post(
    "/events/batch",
    {
      schema: {
        summary: "Emit up to 1000 events at once",
        description: "All or nothing: one invalid event refuses the whole batch and nothing is written.",
        tags: TAGS,
        security: SECURITY,
        body: ref(BatchEmitRequest),
        response: { 202: ref(BatchEmitResponse) },
      },
      config: { problems: ["forbidden", "unknown_event_type"] },
    },
    async (request, reply) => {
      const inputs: EmitInput[] = request.body.events.map((e, i) => ({
        event: e.event,
        userId: actingUser(request, e.user_id, `events[${i}].user_id`),
        data: e.data,
        ...(e.priority === undefined ? {} : { priority: e.priority }),
        ...(e.idempotency_key === undefined ? {} : { idempotencyKey: e.idempotency_key }),
      }));
      const results = await emitter.emitBatch(inputs);
      return reply.code(202).send({ results });
    },
  );
};

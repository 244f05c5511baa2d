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
import type { FastifyRequest } from "fastify";
import { type EmitInput, isLabel, labelReason, MAX_BATCH } from "../../emitter.js";
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
const PROBLEMS = ["forbidden", "unknown_event_type", "invalid_field"] as const;

/**
 * An event of the body as the emitter takes it. The schema only made sure no unknown field came
 * along: the values are the emitter's to check (and it answers for all of them, so they are
 * passed through as sent, whatever their type).
 */
function toInput(
  request: FastifyRequest,
  e: unknown,
  field: string,
  idempotencyKey?: string,
): EmitInput | unknown {
  if (typeof e !== "object" || e === null || Array.isArray(e)) return e;
  const sent = e as Record<string, unknown>;
  const key = sent.idempotency_key ?? idempotencyKey;
  return {
    event: sent.event,
    userId: actingUser(request, sent.user_id, field),
    data: sent.data,
    ...(sent.priority === undefined ? {} : { priority: sent.priority }),
    ...(key === undefined ? {} : { idempotencyKey: key }),
  };
}

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
      config: { problems: [...PROBLEMS] },
    },
    async (request, reply) => {
      const body = request.body as Record<string, unknown>;
      const header = request.headers["idempotency-key"];
      if (header !== undefined && !isLabel(header)) {
        const reason = labelReason("the Idempotency-Key header", header);
        throw new ProblemError("invalid_field", reason, [{ field: "Idempotency-Key", reason }]);
      }
      if (header !== undefined && body.idempotency_key !== undefined && header !== body.idempotency_key) {
        throw new ProblemError(
          "invalid_field",
          "the Idempotency-Key header and idempotency_key differ: send one of them, or the same key in both",
          [{ field: "idempotency_key", reason: "must equal the Idempotency-Key header when both are sent" }],
        );
      }
      const result = await single.emit(toInput(request, body, "user_id", header) as EmitInput);
      if (result.duplicate) reply.header("idempotent-replayed", "true");
      return reply.code(202).send(result);
    },
  );

  app.post(
    "/events/batch",
    {
      schema: {
        summary: `Emit up to ${MAX_BATCH} events at once`,
        description: "All or nothing: one invalid event refuses the whole batch and nothing is written.",
        tags: TAGS,
        security: SECURITY,
        body: ref(BatchEmitRequest),
        response: { 202: ref(BatchEmitResponse) },
      },
      config: { problems: [...PROBLEMS] },
    },
    async (request, reply) => {
      const events: unknown = (request.body as Record<string, unknown>).events;
      // Anything but a list goes to the emitter as it is, to be refused as a library caller's would.
      const inputs = Array.isArray(events)
        ? events.map((e, i) => toInput(request, e, `events[${i}].user_id`))
        : events;
      const results = await emitter.emitBatch(inputs as EmitInput[]);
      return reply.code(202).send({ results });
    },
  );
};

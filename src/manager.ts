/**
 * Webhook management: what the API exposes, usable as a library. `userId` scopes every call to
 * one user's webhooks (another user's id is simply not found); `undefined` means an admin acting
 * for everyone.
 */
import type { Clock } from "./clock.js";
import { attemptDelivery } from "./dispatcher.js";
import { isLabel, labelReason } from "./emitter.js";
import { TEST_EVENT } from "./events.js";
import type { DeliveryClient } from "./http-client.js";
import { isId, newId } from "./ids.js";
import {
  checkFields,
  clampLimit,
  decodeCursor,
  encodeCursor,
  LIMITS,
  ManagerError,
  type ManagerErrorCode,
  type WebhookInput,
} from "./manager-input.js";
import { DELIVERY_STATUSES, type WebhookRecord } from "./models.js";
import type { Handoffs } from "./queue/queue.js";
import { canonicalJson, generateSecret } from "./signer.js";
import {
  type DeliveryFilter,
  DuplicateWebhookError,
  type EngineStatements,
  type Store,
  type WebhookPatch,
} from "./store/index.js";
import type { Environment } from "./validator.js";
import { validateWebhookUrl } from "./validator.js";
import {
  type AttemptView,
  attemptView,
  type DeliveryView,
  deliveryView,
  type WebhookView,
  webhookView,
} from "./views.js";

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export interface TestResult {
  delivery_id: string;
  success: boolean;
  status_code: number | null;
  duration_ms: number;
  error: string | null;
}

export interface ManagerDeps {
  store: Store;
  engineStore: EngineStatements;
  /** Committed rows to the queue, without waiting for its server. */
  handoffs: Handoffs;
  client: DeliveryClient;
  clock: Clock;
  environment: Environment;
  allowTargets: readonly string[];
  /** How long an open breaker waits before its probe (WEBHOOK_BREAKER_COOLDOWN). */
  breakerCooldownMs?: number;
  /** Told whenever a webhook changes, so cached copies (the worker's) are dropped. */
  onChange?: (webhookId: string) => void;
}

const ROTATION_GRACE_MS = 24 * 3_600_000;
const STATUSES = DELIVERY_STATUSES;

function page<T extends { id: string }>(rows: T[], limit: number): Page<T> {
  const more = rows.length > limit;
  const data = more ? rows.slice(0, limit) : rows;
  return { data, next_cursor: more ? encodeCursor(data[data.length - 1]!.id) : null };
}

export { decodeCursor, encodeCursor, ManagerError, type ManagerErrorCode, type WebhookInput };

export class WebhookManager {
  constructor(private readonly deps: ManagerDeps) {}

  #now(): number {
    return this.deps.clock.now();
  }

  /** When an open breaker lets its probe through: nothing of the webhook is sent before. */
  #probeAt(w: WebhookRecord): string | null {
    if (w.breakerState === "closed" || w.breakerOpenedAt === null) return null;
    return new Date(Date.parse(w.breakerOpenedAt) + (this.deps.breakerCooldownMs ?? 0)).toISOString();
  }

  #changed(id: string): void {
    this.deps.onChange?.(id);
  }

  async #validUrl(url: unknown): Promise<string> {
    if (typeof url !== "string" || url.length === 0 || url.length > LIMITS.url) {
      throw new ManagerError("invalid_field", `url must be 1 to ${LIMITS.url} characters`, "url");
    }
    const verdict = await validateWebhookUrl(url, {
      environment: this.deps.environment,
      allowTargets: [...this.deps.allowTargets],
      resolve: (host) => this.deps.client.resolve(host),
    });
    if (!verdict.ok) throw new ManagerError("invalid_url", verdict.reason, "url");
    return verdict.url;
  }

  async create(userId: string, input: WebhookInput): Promise<{ webhook: WebhookView; secret: string }> {
    // The API checks the acting user the same way (auth.ts); a library caller gets the same answer.
    if (!isLabel(userId)) throw new ManagerError("invalid_field", labelReason("user_id", userId), "user_id");
    const fields = checkFields(input, true);
    const url = await this.#validUrl(input.url);
    const secret = generateSecret();
    try {
      const w = await this.deps.store.webhooks.insert({
        id: newId("whk"),
        userId,
        url,
        secret,
        events: fields.events!,
        name: fields.name ?? null,
        description: fields.description ?? null,
        metadata: fields.metadata ?? null,
        retrySchedule: fields.retrySchedule ?? null,
        active: fields.active ?? true,
        now: new Date(this.#now()).toISOString(),
      });
      return { webhook: webhookView(w, this.#now()), secret };
    } catch (err) {
      if (err instanceof DuplicateWebhookError) {
        throw new ManagerError("conflict", "a webhook for this URL already exists", "url");
      }
      throw err;
    }
  }

  async list(
    userId: string | undefined,
    opts: { limit?: number; cursor?: string },
  ): Promise<Page<WebhookView>> {
    const limit = clampLimit(opts.limit);
    const after = opts.cursor === undefined ? undefined : decodeCursor(opts.cursor, "whk");
    const rows = await this.deps.store.webhooks.list(userId, { limit: limit + 1, after });
    const p = page(rows, limit);
    return { data: p.data.map((w) => webhookView(w, this.#now())), next_cursor: p.next_cursor };
  }

  async #find(userId: string | undefined, id: string) {
    const w = isId(id, "whk") ? await this.deps.store.webhooks.get(id, userId) : null;
    if (!w) throw new ManagerError("not_found", `no webhook ${id}`, "id");
    return w;
  }

  async get(userId: string | undefined, id: string): Promise<WebhookView> {
    return webhookView(await this.#find(userId, id), this.#now());
  }

  async update(userId: string | undefined, id: string, input: Partial<WebhookInput>): Promise<WebhookView> {
    await this.#find(userId, id);
    const fields = checkFields(input, false);
    const patch: WebhookPatch = {};
    if (input.url !== undefined) patch.url = await this.#validUrl(input.url);
    if (fields.events !== undefined) patch.events = fields.events;
    if (fields.name !== undefined) patch.name = fields.name;
    if (fields.description !== undefined) patch.description = fields.description;
    if (fields.metadata !== undefined) patch.metadata = fields.metadata;
    if (fields.retrySchedule !== undefined) patch.retrySchedule = fields.retrySchedule;
    if (fields.active !== undefined) patch.active = fields.active;
    try {
      const w = await this.deps.store.webhooks.update(id, userId, patch, new Date(this.#now()).toISOString());
      if (!w) throw new ManagerError("not_found", `no webhook ${id}`, "id");
      if (patch.active === true) {
        // Deliveries parked while it was disabled go out now (none when it was never disabled).
        const now = this.#now();
        const resumed = await this.deps.store.deliveries.resumeParked(id, new Date(now).toISOString());
        this.deps.handoffs.send(resumed, now);
      }
      this.#changed(id);
      return webhookView(w, this.#now());
    } catch (err) {
      if (err instanceof DuplicateWebhookError) {
        throw new ManagerError("conflict", "a webhook for this URL already exists", "url");
      }
      throw err;
    }
  }

  async delete(userId: string | undefined, id: string): Promise<void> {
    const deleted = isId(id, "whk") && (await this.deps.store.webhooks.delete(id, userId));
    if (!deleted) throw new ManagerError("not_found", `no webhook ${id}`, "id");
    this.#changed(id);
  }

  /** A new secret, shown once; the old one stays valid (both are signed with) for 24 h. */
  async rotateSecret(
    userId: string | undefined,
    id: string,
  ): Promise<{ webhook: WebhookView; secret: string }> {
    const w = await this.#find(userId, id);
    const secret = generateSecret();
    const now = this.#now();
    const updated = await this.deps.store.webhooks.update(
      id,
      userId,
      {
        secret,
        previousSecret: w.secret,
        previousSecretExpiresAt: new Date(now + ROTATION_GRACE_MS).toISOString(),
      },
      new Date(now).toISOString(),
    );
    if (!updated) throw new ManagerError("not_found", `no webhook ${id}`, "id");
    this.#changed(id);
    return { webhook: webhookView(updated, now), secret };
  }

  /**
   * Sends a `webhook.test` event now, outside the queue, and reports what happened. It is
   * recorded like any delivery (one attempt, never retried); a success closes an open breaker.
   */
  async test(userId: string | undefined, id: string): Promise<TestResult> {
    const w = await this.#find(userId, id);
    const hook = await this.deps.engineStore.webhookForDispatch(w.id);
    if (!hook) throw new ManagerError("not_found", `no webhook ${id}`, "id");
    const now = this.#now();
    const createdAt = new Date(now).toISOString();
    const eventId = newId("evt");
    const deliveryId = newId("dlv");
    const body = canonicalJson({
      id: eventId,
      event: TEST_EVENT,
      created_at: createdAt,
      user_id: w.userId,
      data: { message: "This is a test delivery" },
    });
    // Not in the queue (no next_retry_at) and leased to this call until its outcome is written.
    const owner = `test:${deliveryId}`;
    await this.deps.store.deliveries.insertUnqueued({
      id: deliveryId,
      webhookId: w.id,
      eventId,
      event: TEST_EVENT,
      body,
      createdAt,
      leaseOwner: owner,
    });
    const r = await attemptDelivery(
      { id: deliveryId, webhookId: w.id, event: TEST_EVENT, payload: body, priority: 0, attempts: 0 },
      { ...hook, active: true },
      { client: this.deps.client, clock: this.deps.clock, schedule: [] },
    );
    const outcome = { ...r.outcome, status: r.outcome.status === "success" ? "success" : "failed" } as const;
    const success = outcome.status === "success";
    await this.deps.engineStore.recordOutcomes({
      leaseOwner: owner,
      requireEngineLock: false,
      outcomes: [{ ...outcome, nextRetryAt: null }],
      breakers:
        success && hook.breakerState !== "closed"
          ? [{ webhookId: w.id, state: "closed", openedAt: null }]
          : [],
      disabled: [],
    });
    this.#changed(w.id);
    return {
      delivery_id: deliveryId,
      success,
      status_code: outcome.responseCode,
      duration_ms: outcome.durationMs,
      error: outcome.errorMessage,
    };
  }

  async deliveries(
    userId: string | undefined,
    webhookId: string,
    opts: DeliveryFilter & { limit?: number; cursor?: string },
  ): Promise<Page<DeliveryView>> {
    const w = await this.#find(userId, webhookId);
    if (opts.status !== undefined && !STATUSES.includes(opts.status)) {
      throw new ManagerError("invalid_field", `status must be one of ${STATUSES.join(", ")}`, "status");
    }
    const limit = clampLimit(opts.limit);
    const before = opts.cursor === undefined ? undefined : decodeCursor(opts.cursor, "dlv");
    const rows = await this.deps.store.deliveries.list(
      webhookId,
      { status: opts.status, event: opts.event, since: opts.since, until: opts.until },
      { limit: limit + 1, before },
    );
    const p = page(rows, limit);
    const notBefore = this.#probeAt(w);
    return { data: p.data.map((d) => deliveryView(d, notBefore)), next_cursor: p.next_cursor };
  }

  async delivery(
    userId: string | undefined,
    webhookId: string,
    deliveryId: string,
  ): Promise<DeliveryView & { payload: unknown; attempt_history: AttemptView[] }> {
    const w = await this.#find(userId, webhookId);
    const d = isId(deliveryId, "dlv") ? await this.deps.store.deliveries.get(deliveryId, webhookId) : null;
    if (!d) throw new ManagerError("not_found", `no delivery ${deliveryId}`, "delivery_id");
    const attempts = await this.deps.store.deliveries.attempts(d.id);
    return {
      ...deliveryView(d, this.#probeAt(w)),
      payload: d.payload === null ? null : JSON.parse(d.payload),
      attempt_history: attempts.map(attemptView),
    };
  }

  /** Queue a finished delivery again, now. Refused while it is still pending. */
  async retry(userId: string | undefined, webhookId: string, deliveryId: string): Promise<DeliveryView> {
    const w = await this.#find(userId, webhookId);
    const d = isId(deliveryId, "dlv") ? await this.deps.store.deliveries.get(deliveryId, webhookId) : null;
    if (!d) throw new ManagerError("not_found", `no delivery ${deliveryId}`, "delivery_id");
    if (d.status === "pending")
      throw new ManagerError("conflict", "the delivery is still pending", "delivery_id");
    if (!w.active)
      throw new ManagerError("conflict", "the webhook is disabled: enable it first", "webhook_id");
    const now = new Date(this.#now()).toISOString();
    if (!(await this.deps.store.deliveries.requeue(d.id, now))) {
      throw new ManagerError("conflict", "the delivery is still pending", "delivery_id");
    }
    this.deps.handoffs.send([{ id: d.id, webhookId, priority: d.priority }], this.#now());
    return deliveryView({ ...d, status: "pending", nextRetryAt: now, completedAt: null });
  }
}

/**
 * Webhook settings as the worker delivers with them: read at most once per `ttlMs` per webhook
 * (a claim round touches every ready webhook), dropped at once when this process changes one.
 */
import type { Clock } from "../clock.js";
import type { WebhookRecord } from "../models.js";

export class WebhookCache {
  readonly #entries = new Map<string, { hook: WebhookRecord; at: number }>();

  constructor(
    private readonly load: (id: string) => Promise<WebhookRecord | null>,
    private readonly clock: Clock,
    private readonly ttlMs: number,
    /** Told of every fresh read (the breaker memory adopts the stored state). */
    private readonly onRead: (hook: WebhookRecord) => void,
  ) {}

  async get(id: string): Promise<WebhookRecord | null> {
    const now = this.clock.now();
    const cached = this.#entries.get(id);
    if (cached && now - cached.at < this.ttlMs) return cached.hook;
    const hook = await this.load(id);
    if (hook) {
      this.#entries.set(id, { hook, at: now });
      this.onRead(hook);
    } else {
      this.#entries.delete(id);
    }
    return hook;
  }

  /** Remember a change this process made before its write lands (a 410 disabled the webhook). */
  override(hook: WebhookRecord): void {
    this.#entries.set(hook.id, { hook, at: this.clock.now() });
  }

  invalidate(id: string): void {
    this.#entries.delete(id);
  }
}

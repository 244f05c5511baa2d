/**
 * Why this exists: the campaign's control plane — the admin calls it makes on the service's
 * HTTP API besides emitting: create the webhooks, PATCH them mid-flight (retried through faults
 * until answered, each change recorded with the interval in which it took effect, which is what
 * the checker's subscription history is made of), and read /health while draining.
 */
import type { SubscriptionState, WebhookChange, WebhookHistory } from "./history.js";

export class ServiceApi {
  /** Changes in progress per webhook: PATCHes of one webhook go one at a time. */
  readonly #chains = new Map<string, Promise<unknown>>();
  /** No call is retried past this (set when healing, so healing is bounded). */
  #giveUpAt = Number.POSITIVE_INFINITY;

  constructor(
    readonly baseUrl: string,
    readonly key: string,
    /** Where retried calls are noted (the executed timeline). */
    readonly note: (line: string) => void = () => {},
  ) {}

  async #call(
    method: string,
    path: string,
    body: unknown,
    timeoutMs = 5000,
  ): Promise<{ status: number; json: unknown }> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.key}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.status, json };
  }

  giveUpBy(at: number): void {
    this.#giveUpAt = at;
  }

  /** Retries network errors, 429 and 5xx until `until`; returns the first other answer. */
  async #retrying(method: string, path: string, body: unknown, until: number) {
    const deadline = () => Math.min(until, this.#giveUpAt);
    for (let attempt = 0; ; attempt++) {
      let failure: string;
      try {
        const r = await this.#call(method, path, body);
        if (r.status !== 429 && r.status < 500) return r;
        failure = `${r.status} ${JSON.stringify(r.json).slice(0, 200)}`;
        if (Date.now() > deadline()) throw new Error(`${method} ${path}: ${r.status} until the deadline`);
      } catch (err) {
        if (Date.now() > deadline()) throw err;
        failure = (err as Error).name === "TimeoutError" ? "timeout" : (err as Error).message;
      }
      if (attempt === 0 || attempt % 5 === 4)
        this.note(`${method} ${path} attempt ${attempt + 1}: ${failure}; retrying`);
      await new Promise((r) => setTimeout(r, Math.min(2000, 200 * 2 ** attempt)));
    }
  }

  async createWebhook(
    userId: string,
    url: string,
    events: string[],
  ): Promise<{ id: string; secret: string }> {
    const r = await this.#retrying(
      "POST",
      "/api/v1/webhooks",
      { user_id: userId, url, events },
      Date.now() + 60_000,
    );
    const j = r.json as { id?: string; secret?: string };
    if (r.status !== 201 || !j.id || !j.secret)
      throw new Error(`creating a webhook answered ${r.status}: ${JSON.stringify(r.json)}`);
    return { id: j.id, secret: j.secret };
  }

  /**
   * PATCHes a webhook (retried until answered) and records the change in its history, with
   * `to` computed from the state before it. Serialised per webhook.
   */
  change(
    w: WebhookHistory,
    patch: { active?: boolean; events?: string[]; path?: string },
    receiverUrl: string,
    what: string,
  ): Promise<WebhookChange> {
    const prev = this.#chains.get(w.id) ?? Promise.resolve();
    const next = prev
      .catch(() => {})
      .then(async () => {
        const from: SubscriptionState = w.changes.at(-1)?.to ?? w.initial;
        const to: SubscriptionState = {
          active: patch.active ?? from.active,
          events: patch.events ?? from.events,
          path: patch.path ?? from.path,
        };
        const body: Record<string, unknown> = {};
        if (patch.active !== undefined) body.active = patch.active;
        if (patch.events !== undefined) body.events = patch.events;
        if (patch.path !== undefined) body.url = `${receiverUrl}${patch.path}`;
        const sets = (["active", "events", "path"] as const).filter((k) => patch[k] !== undefined);
        const sentAt = Date.now();
        try {
          const r = await this.#retrying("PATCH", `/api/v1/webhooks/${w.id}`, body, sentAt + 180_000);
          if (r.status !== 200)
            throw new Error(`PATCH ${w.name} answered ${r.status}: ${JSON.stringify(r.json)}`);
        } catch (err) {
          // It may or may not have taken effect: from here on, this webhook's state is unknown.
          w.changes.push({
            sentAt,
            ackedAt: Number.MAX_SAFE_INTEGER,
            to,
            sets,
            what: `${what} (never confirmed)`,
          });
          throw err;
        }
        const change: WebhookChange = { sentAt, ackedAt: Date.now(), to, sets, what };
        w.changes.push(change);
        return change;
      });
    this.#chains.set(w.id, next);
    return next;
  }

  /** Every change started so far has been answered (or given up). */
  async settled(): Promise<void> {
    await Promise.all([...this.#chains.values()].map((p) => p.catch(() => {})));
  }

  /** Waiting deliveries as GET /health reports them, or null when it does not answer. */
  async queueDepth(): Promise<number | null> {
    try {
      const res = await fetch(`${this.baseUrl}/health`, { signal: AbortSignal.timeout(3000) });
      const j = (await res.json()) as { queue_depth?: Record<string, number> | null };
      if (!j.queue_depth) return null;
      return Object.values(j.queue_depth).reduce((s, n) => s + n, 0);
    } catch {
      return null;
    }
  }
}

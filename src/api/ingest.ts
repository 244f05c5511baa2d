/**
 * Group commit for `POST /events`: single-event requests that arrive in the same turn of the event
 * loop are written by ONE `emitBatch` transaction, and each request is answered once that commit
 * is done, so nothing is acknowledged before it is on disk.
 *
 * Why: an emit's cost is almost all the SQLite commit (the event, a delivery per subscriber, their
 * indexes), and a commit of ten events costs little more than a commit of one. Under concurrent
 * load this multiplies ingest throughput; a lone request waits one `setImmediate` at most.
 *
 * Each request keeps its own outcome. `emitBatch` is all or nothing, so when one event is refused
 * (EmitError names its index) that request gets the error and the rest are written without it;
 * any other failure falls back to writing the events one by one, so no request can fail because of
 * another's payload. Idempotency keys behave as they would sequentially: the transaction sees the
 * earlier events of its own batch.
 */
import { EmitError, type EmitInput, type EmitResult, type Emitter, MAX_BATCH } from "../emitter.js";

interface Waiting {
  input: EmitInput;
  resolve(result: EmitResult): void;
  reject(err: unknown): void;
}

export class CoalescingEmitter {
  #queue: Waiting[] = [];
  #scheduled = false;

  constructor(private readonly emitter: Pick<Emitter, "emitBatch">) {}

  emit(input: EmitInput): Promise<EmitResult> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ input, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    while (this.#queue.length > 0) {
      void this.#write(this.#queue.splice(0, MAX_BATCH));
    }
  }

  async #write(batch: Waiting[]): Promise<void> {
    while (batch.length > 0) {
      try {
        const results = await this.emitter.emitBatch(batch.map((w) => w.input));
        for (const [i, w] of batch.entries()) w.resolve(results[i]!);
        return;
      } catch (err) {
        if (err instanceof EmitError && err.index !== undefined && batch[err.index]) {
          const [refused] = batch.splice(err.index, 1);
          // The request sent one event: report it as such, without the batch index.
          refused!.reject(err.withoutIndex());
          continue;
        }
        if (batch.length === 1) {
          batch[0]!.reject(err);
          return;
        }
        await Promise.all(batch.map((w) => this.#write([w])));
        return;
      }
    }
  }
}

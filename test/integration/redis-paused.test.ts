/**
 * Emits never wait on the queue's server (CONTRACT §3): with redis-server frozen (SIGSTOP — it
 * keeps its sockets open and answers nothing, the worst case for a client), an emit is answered
 * as soon as its transaction commits, and everything is delivered once Redis wakes up.
 */
import { afterEach, describe, expect, it } from "vitest";
import { startTestEngine, type TestEngine } from "../helpers/engine.js";
import { type Receiver, startReceiver } from "../helpers/receiver.js";
import { type RedisServer, startRedisServer } from "../helpers/redis-server.js";
import { serviceMissing } from "../helpers/services.js";

const skip = serviceMissing("TEST_DATABASE_URL") || serviceMissing("TEST_REDIS_URL");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(50);
  }
}

describe.skipIf(skip)("emits while Redis is paused", () => {
  let redis: RedisServer | undefined;
  let t: TestEngine | undefined;
  let rx: Receiver | undefined;

  afterEach(async () => {
    if (redis?.pid) process.kill(redis.pid, "SIGCONT");
    await t?.cleanup();
    await rx?.close();
    await redis?.stop();
  }, 30_000);

  it("are answered at their normal speed, and delivered once Redis answers again", async () => {
    redis = await startRedisServer();
    rx = await startReceiver();
    t = await startTestEngine({ backend: "postgres", config: { redisUrl: redis.url } });
    const { emitter, manager } = t.engine;
    const { webhook: hook } = await manager.create("alice", { url: `${rx.url}/hook`, events: ["*"] });
    await emitter.emit("memory.created", { userId: "alice", data: { n: 0 } });
    await rx.waitForRequests(1);
    const list = async () => (await manager.deliveries("alice", hook.id, {})).data;
    const [first] = await list();
    await waitFor(async () => (await list())[0]?.status === "success");

    process.kill(redis.pid!, "SIGSTOP");
    const took: number[] = [];
    for (let n = 1; n <= 5; n++) {
      const started = performance.now();
      const r = await emitter.emit("memory.created", { userId: "alice", data: { n } });
      took.push(performance.now() - started);
      expect(r.deliveries).toBe(1);
    }
    // Nor does the API's retry of a finished delivery.
    const started = performance.now();
    await manager.retry("alice", hook.id, first!.id);
    took.push(performance.now() - started);
    // The queue's command timeout is 5 s: a call that waited for Redis would take that long.
    expect(Math.max(...took)).toBeLessThan(1000);
    await sleep(500);
    expect(rx.requests.length).toBe(1); // nothing could be claimed while Redis was frozen

    process.kill(redis.pid!, "SIGCONT");
    await rx.waitForRequests(7, 30_000);
    const got = rx.requests.map((q) => (JSON.parse(q.text) as { data: { n: number } }).data.n).sort();
    expect(got).toEqual([0, 0, 1, 2, 3, 4, 5]); // the retry sent event 0 again
  }, 60_000);
});

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
    await manager.create("alice", { url: `${rx.url}/hook`, events: ["*"] });
    await emitter.emit("memory.created", { userId: "alice", data: { n: 0 } });
    await rx.waitForRequests(1);

    process.kill(redis.pid!, "SIGSTOP");
    const took: number[] = [];
    for (let n = 1; n <= 5; n++) {
      const started = performance.now();
      const r = await emitter.emit("memory.created", { userId: "alice", data: { n } });
      took.push(performance.now() - started);
      expect(r.deliveries).toBe(1);
    }
    // The queue's command timeout is 5 s: an emit that waited for Redis would take that long.
    expect(Math.max(...took)).toBeLessThan(1000);
    await sleep(500);
    expect(rx.requests.length).toBe(1); // nothing could be claimed while Redis was frozen

    process.kill(redis.pid!, "SIGCONT");
    await rx.waitForRequests(6, 30_000);
    const got = rx.requests.map((q) => (JSON.parse(q.text) as { data: { n: number } }).data.n).sort();
    expect(got).toEqual([0, 1, 2, 3, 4, 5]);
  }, 60_000);
});

/**
 * What signing costs per delivery: canonicalize a ~1 KiB memory.created envelope and compute both
 * signatures (one secret). The baseline is one bare HMAC-SHA256 over the same body bytes, measured
 * in the same run, so the ratio says how much our work adds on top of the unavoidable hash.
 */
import { createHmac } from "node:crypto";
import { canonicalJson, signBody, signWebhook } from "../src/signer.js";
import type { Bench, Figure } from "./types.js";

const SECRET = "whsec_dC1A52h4mGNRHOUUWM3W1DJivP8DB76UVlCPQWTB7aw=";

const PAYLOAD = {
  id: "evt_01JGTV5Q3K8ZB4N6Y2W0XR7M9D",
  event: "memory.created",
  created_at: "2026-01-01T12:34:56.789Z",
  user_id: "user_8f14e45fceea167a5a36dedd4bea2543",
  data: {
    memory_id: "mem_01JGTV5Q3K8ZB4N6Y2W0XR7M9E",
    content_preview:
      "Met Alice at the graph-theory conference in Königsberg; she suggested revisiting the seven bridges " +
      "problem with weighted edges and mentioned a paper on Eulerian paths in dynamic graphs — follow up 🧠",
    concepts: ["alice", "conference", "graph theory", "eulerian path", "königsberg", "dynamic graphs"],
    importance: 0.82,
    source: { kind: "chat", session_id: "ses_01JGTV5Q3K8ZB4N6Y2W0XR7M9F", agent: "claude", turn: 17 },
    embedding_model: "text-embedding-3-small",
    tags: { project: "research", priority: "high", reviewed: false, confidence: 0.9375 },
    related_memory_ids: ["mem_01JGTV5Q3K8ZB4N6Y2W0XR7M9A", "mem_01JGTV5Q3K8ZB4N6Y2W0XR7M9B"],
    metadata: { language: "en", tokens: 187, created_by: "continuum-agent/2.3.1", expires_at: null },
  },
};

/**
 * Median microseconds per call of each function. Rounds are interleaved so that noise from this
 * shared machine hits every figure alike, after a warm-up long enough for the optimizing JIT.
 */
function medianMicros(fns: Record<string, () => unknown>, batch = 500, rounds = 100): Record<string, number> {
  const samples: Record<string, number[]> = {};
  for (const [name, fn] of Object.entries(fns)) {
    samples[name] = [];
    for (let i = 0; i < batch * 20; i++) fn();
  }
  for (let r = 0; r < rounds; r++) {
    for (const [name, fn] of Object.entries(fns)) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < batch; i++) fn();
      samples[name]!.push(Number(process.hrtime.bigint() - start) / 1000 / batch);
    }
  }
  return Object.fromEntries(
    Object.entries(samples).map(([name, s]) => [name, s.sort((a, b) => a - b)[Math.floor(s.length / 2)]!]),
  );
}

const bench: Bench = {
  name: "signing",
  async run(): Promise<Figure[]> {
    const body = canonicalJson(PAYLOAD);
    const bytes = Buffer.from(`1767225600.${body}`);
    const key = Buffer.from(SECRET);
    let timestamp = 1_767_225_600;
    const us = medianMicros({
      baseline: () => createHmac("sha256", key).update(bytes).digest("hex"),
      full: () =>
        signWebhook({
          secret: SECRET,
          payload: PAYLOAD,
          deliveryId: "dlv_1",
          timestamp: timestamp++,
          event: "e",
        }),
      perAttempt: () =>
        signBody({ secret: SECRET, body, deliveryId: "dlv_1", timestamp: timestamp++, event: "e" }),
      canonical: () => canonicalJson(PAYLOAD),
    });
    const base = us.baseline!;

    const note = `${body.length} B body`;
    const figure = (name: string, micros: number): Figure[] => [
      { name: `${name} median`, value: micros, unit: "µs/op", baseline: base, ratio: micros / base, note },
      {
        name: `${name} throughput`,
        value: 1e6 / micros,
        unit: "ops/s",
        baseline: 1e6 / base,
        ratio: base / micros,
        note,
      },
    ];
    return [
      ...figure("signing: canonicalize + both signatures", us.full!),
      ...figure("signing: both signatures of a canonical body (per attempt)", us.perAttempt!),
      ...figure("signing: canonicalize only", us.canonical!),
    ];
  },
};

export default bench;

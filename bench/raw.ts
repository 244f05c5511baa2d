/**
 * The baseline most figures are measured against: raw undici Pool POSTs of signed bodies to the
 * bench receiver, a fixed number in flight, no database, no queue. What the HTTP path alone
 * (signing, the client, the receiver's verification) allows on this machine, in this run.
 */
import { Pool } from "undici";
import { signBody } from "../src/signer.js";
import { ownCpu } from "./proc.js";
import type { ReceiverProcess } from "./receiver-client.js";

export const RAW_SECRET = "whsec_dC1A52h4mGNRHOUUWM3W1DJivP8DB76UVlCPQWTB7aw=";

export interface RawResult {
  /** Requests per second. */
  rate: number;
  /** CPU seconds of this process per 1,000 requests. */
  cpuPer1000: number;
}

/**
 * `bodies` signed POSTs round-robin over `paths` paths (`<prefix>/raw/<tag>/h<k>`), `inFlight` at
 * once over one Pool of as many connections.
 */
export async function rawUndici(
  rx: ReceiverProcess,
  opts: { bodies: number; paths: number; inFlight: number; tag?: string; prefix?: string },
): Promise<RawResult> {
  const paths = Array.from(
    { length: opts.paths },
    (_, k) => `${opts.prefix ?? ""}/raw/${opts.tag ?? "x"}/h${k}`,
  );
  rx.setSecrets(Object.fromEntries(paths.map((p) => [p, RAW_SECRET])));
  const pool = new Pool(rx.url, { connections: opts.inFlight, pipelining: 1 });
  const body = JSON.stringify({
    created_at: new Date().toISOString(),
    data: { n: 1 },
    event: "memory.created",
    id: "evt_x",
    user_id: "u",
  });
  await rx.report(true);
  let next = 0;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const lane = async () => {
    while (next < opts.bodies) {
      const i = next++;
      const headers = signBody({
        secret: RAW_SECRET,
        body,
        deliveryId: `dlv_raw_${i}`,
        timestamp: Math.floor(Date.now() / 1000),
        event: "memory.created",
      });
      const res = await pool.request({ path: paths[i % paths.length]!, method: "POST", body, headers });
      await res.body.dump();
    }
  };
  await Promise.all(Array.from({ length: opts.inFlight }, lane));
  const secs = (performance.now() - started) / 1000;
  const cpu = ownCpu(cpu0);
  await pool.close();
  const r = await rx.report();
  if (r.verified < opts.bodies || r.rejected > 0) {
    throw new Error(`raw undici: ${r.verified}/${opts.bodies} verified, ${r.rejected} bad`);
  }
  return { rate: opts.bodies / secs, cpuPer1000: cpu / (opts.bodies / 1000) };
}

/**
 * Why this exists: `npm run chaos -- --mode embedded|postgres|redis --seconds N --seed S`, a
 * Jepsen-style fault campaign against the real service (see campaign.ts). Progress goes to
 * stderr; the report (or with --json one JSON object) to stdout. Exit 0 when every guarantee
 * held, 1 when one broke (the report names the seed and the command to re-run it), 2 on bad usage.
 */
import { parseArgs, USAGE, UsageError } from "./args.js";
import { runCampaign } from "./campaign.js";
import { formatJson, formatText } from "./report.js";
import type { Topology } from "./topology.js";

async function main(): Promise<number> {
  let options: ReturnType<typeof parseArgs>;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`chaos: ${err.message}\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  if (options === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  const o = options;
  let topology: Topology | undefined;
  // No service process (a SIGSTOPped one least of all) may outlive the campaign.
  process.on("exit", () => topology?.killNow());
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      process.stderr.write(`chaos: ${sig}, stopping (seed ${o.seed})\n`);
      topology?.killNow();
      process.exit(130);
    });
  }
  const started = Date.now();
  process.stderr.write(`chaos: mode ${o.mode}, seed ${o.seed}\n`);
  const result = await runCampaign(
    o,
    (line) => process.stderr.write(`chaos [${((Date.now() - started) / 1000).toFixed(0)}s] ${line}\n`),
    (t) => {
      topology = t;
    },
  );
  process.stdout.write(`${o.json ? formatJson(result) : formatText(result)}\n`);
  if (!result.verdict.ok) process.stderr.write(`chaos: FAILED with seed ${o.seed}; rerun: ${result.rerun}\n`);
  return result.verdict.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

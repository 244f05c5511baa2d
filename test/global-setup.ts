import { execFileSync } from "node:child_process";

/**
 * The e2e tests run the real `bin/continuum-webhooks.js`, which loads dist/: build it first.
 * TEST_SKIP_BUILD=1 skips that for a run of tests that never start the CLI.
 */
export default function setup(): void {
  if (process.env.TEST_SKIP_BUILD === "1") return;
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
    stdio: "inherit",
  });
}

/**
 * The docs checker as a command, for a writer who wants the verdict without the test suite:
 *
 *   npx tsx scripts/docs-check/cli.ts [FILE.md ...]    (npm run docs:check)
 *
 * Without arguments it checks the documents of sources.ts; with some, only those (a runbook then
 * needs README.md beside it for its `$API`). Problems go to stdout, one per line; the exit status
 * is 1 when there is any. Without Debian's Python and its web frameworks the python blocks are not
 * run, which is said on stderr (and is a failure under REQUIRE_TOOLCHAINS=1).
 */
import { toolchainMissing } from "../../test/helpers/toolchains.js";
import { checkDocs } from "./check.js";
import { readDocs } from "./document.js";
import { loadKnown } from "./known.js";
import { documents } from "./sources.js";

const names = process.argv.slice(2);
let failed = false;
let pythonMissing: string | null;
let pythonRequired = false;
try {
  pythonMissing = toolchainMissing("python-frameworks");
} catch (err) {
  pythonMissing = (err as Error).message;
  pythonRequired = true;
}

const { known, close } = await loadKnown();
try {
  const report = await checkDocs(known, readDocs(names.length > 0 ? names : documents()), {
    python: pythonMissing === null,
  });
  for (const line of report.problems) console.log(line);
  if (report.notRun.length > 0) {
    console.error(`docs-check: ${report.notRun.length} python block(s) not run: ${pythonMissing}`);
    if (pythonRequired) failed = true;
  }
  if (report.problems.length > 0) failed = true;
} finally {
  await close();
}
process.exitCode = failed ? 1 : 0;

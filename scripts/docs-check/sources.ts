/**
 * Every file the docs checker reads by path, in one place. The service's modules are imported
 * (known.ts), so the compiler notices when one moves; a path in a string goes unnoticed until the
 * check breaks, and src/ is being restructured: when a file named here moves, change it here.
 */
import { mkdirSync, readdirSync, rmdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * The documents a reader follows, checked by default: every docs/*.md, so a new one is checked
 * without anyone remembering to add it, except docs/EVENTS.md, which has its own test
 * (events-doc.test.ts) and names the receiver's route (`POST /webhooks/continuum`), not ours.
 */
export function documents(): string[] {
  const md = (dir: string) =>
    readdirSync(join(ROOT, dir))
      .filter((f) => f.endsWith(".md"))
      .sort()
      .map((f) => `${dir}/${f}`);
  return [
    "README.md",
    ...md("docs").filter((f) => f !== "docs/EVENTS.md"),
    "SECURITY.md",
    ...md("docs/runbooks"),
  ];
}

/** What a code block's `import … from "continuum-webhooks"` must resolve to: src/, never a stale dist/. */
export const ENTRY_POINTS = {
  "continuum-webhooks": "src/index.ts",
  "continuum-webhooks/verify": "src/verify.ts",
} as const;

/** The vectors a python `verify_delivery` in the docs must pass. */
export const TEST_VECTORS = "docs/test-vectors.json";

/** The test harness: the variables its code reads (`TEST_HIDE_TOOLCHAINS`) are ones the docs may name. */
export const TEST_CODE = "test";

/** Where `npm run <script>` in the docs must find the script. */
export const PACKAGE_JSON = "package.json";

/**
 * Scratch space for the blocks handed to a compiler: inside the repository so that node_modules
 * and the paths above resolve as they do for the project; ignored by git and Biome.
 */
const SCRATCH = join(ROOT, "test", ".tmp-docs");

/** Runs `fn` in a fresh scratch directory of its own (runs may overlap), removed afterwards. */
export function withScratch<T>(kind: string, fn: (dir: string) => T): T {
  const dir = join(SCRATCH, `${process.pid}-${kind}`);
  mkdirSync(dir, { recursive: true });
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    try {
      rmdirSync(SCRATCH);
    } catch {
      // Another run's directory is still there.
    }
  }
}

/**
 * The documents a reader follows — README.md, docs/*.md but EVENTS.md, SECURITY.md,
 * docs/runbooks/*.md (scripts/docs-check/sources.ts) — against the code: the docs checker runs or
 * checks every fenced block and every flag, environment variable, route and metric they name (the
 * rules are in scripts/docs-check/check.ts), and must find nothing. `npm run docs:check` gives the
 * same verdict outside the suite; the checker's own tests are docs-checker.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkDocs, type Report } from "../../scripts/docs-check/check.js";
import { readDocs, show } from "../../scripts/docs-check/document.js";
import { loadKnown } from "../../scripts/docs-check/known.js";
import { runPython } from "../../scripts/docs-check/python.js";
import { documents } from "../../scripts/docs-check/sources.js";
import { needToolchain } from "../helpers/toolchains.js";

const DOCS = documents();
let report: Report;
let close: () => Promise<void> = async () => {};

beforeAll(async () => {
  const loaded = await loadKnown();
  close = loaded.close;
  // The python blocks need Python's web frameworks: run by a test of their own, which can skip.
  report = await checkDocs(loaded.known, readDocs(DOCS), { python: false });
}, 60_000);

afterAll(() => close());

describe("docs against the code", () => {
  for (const name of DOCS) {
    it(`${name}: every block is checked, every name exists`, () => {
      expect(report.byDoc.get(name)).toEqual([]);
    });
  }

  it("the checker's setup is sound: code blocks compile against src/, not a stale dist/", () => {
    expect(report.problems.filter((p) => !DOCS.some((name) => p.startsWith(`${name}:`)))).toEqual([]);
  });

  it("every python block runs under /usr/bin/python3 (and a verify_delivery passes the test vectors)", (ctx) => {
    needToolchain(ctx, "python-frameworks");
    expect(report.notRun.length).toBeGreaterThan(0);
    expect(runPython(report.notRun).map(show)).toEqual([]);
  });
});

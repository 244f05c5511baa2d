/**
 * The docs checker's entry point: which check applies to which line and block of a document, and
 * one report for a set of documents. Every fenced block is run or checked by its language, and a
 * block in any other language (or none) is itself a problem, so nothing enters the docs unchecked:
 *
 * - ts/typescript, js/javascript: type-checked against src/ (typescript.ts);
 * - python: executed (python.ts), when the caller says this machine can;
 * - sh/bash/shell/console: `bash -n`, then every command (shell.ts);
 * - json, http, promql: parsed and matched against the code (formats.ts);
 * - text: only the name checks, plus a `continuum-webhooks …` synopsis's verbs and flags.
 *
 * Every CLI flag, environment variable, route and `webhook_*` metric named anywhere, prose
 * included, must exist in the code (names.ts). Each problem reads `file:line: token — reason`.
 */
import { type Block, type Doc, type Problem, show } from "./document.js";
import { checkHttp, checkJson, checkPromql } from "./formats.js";
import type { Known } from "./known.js";
import { checkNames, checkSynopsis, cliArgs, unknownFlags } from "./names.js";
import { runPython } from "./python.js";
import { checkShellBlock, checkShellText, OTHER_TOOLS, SHELL_LANGS } from "./shell.js";
import { JS_LANGS, TS_LANGS, typecheck } from "./typescript.js";

const KNOWN_LANGS = new Set([
  ...SHELL_LANGS,
  ...TS_LANGS,
  ...JS_LANGS,
  "python",
  "json",
  "http",
  "promql",
  "text",
]);

export interface CheckOptions {
  /** Execute the python blocks: needs /usr/bin/python3 with Flask, FastAPI and Django. */
  python: boolean;
}

export interface Report {
  /** Every problem, `file:line: token — reason`, by document in the order given, then by line. */
  problems: string[];
  /** The same, per document; a document without problems maps to []. */
  byDoc: Map<string, string[]>;
  /** Blocks left unchecked because the options said so (python blocks without python). */
  notRun: Block[];
}

/**
 * `--flags` named in prose or a text block: a synopsis (an inline `continuum-webhooks …` span, or a
 * text block's line starting with the command) is checked against its verb, the rest against all.
 */
function checkFlagsInText(known: Known, doc: Doc, line: number, text: string, block: boolean): Problem[] {
  const problems: Problem[] = [];
  let rest = text;
  for (const span of text.match(/`[^`]+`/g) ?? []) {
    const inner = span.slice(1, -1).trim();
    rest = rest.replace(span, " ");
    const words = inner.split(/\s+/);
    const cli = cliArgs(words.map((w) => w.replace(/^\$\(/, "")));
    if (cli) problems.push(...checkSynopsis(known, doc, line, cli));
    else if (OTHER_TOOLS.has(words[0]!)) problems.push(...checkShellText(known, doc, line, inner));
    else problems.push(...unknownFlags(known, doc, line, inner));
  }
  const synopsis = block ? cliArgs(rest.trim().split(/\s+/)) : null;
  problems.push(
    ...(synopsis ? checkSynopsis(known, doc, line, synopsis) : unknownFlags(known, doc, line, rest)),
  );
  return problems;
}

async function checkDoc(known: Known, doc: Doc): Promise<Problem[]> {
  const problems: Problem[] = [];
  if (!doc.exists) problems.push({ doc: doc.name, line: 0, token: doc.name, reason: "cannot read the file" });
  for (const { line, text } of doc.prose) {
    problems.push(...checkNames(known, doc, line, text), ...checkFlagsInText(known, doc, line, text, false));
  }
  for (const block of doc.blocks) {
    block.lines.forEach((text, k) => {
      // A promql block's names are the promql checker's business.
      if (block.lang !== "promql") problems.push(...checkNames(known, doc, block.line + k, text));
      if (block.lang === "text") problems.push(...checkFlagsInText(known, doc, block.line + k, text, true));
    });
    if (!KNOWN_LANGS.has(block.lang)) {
      problems.push({
        doc: doc.name,
        line: block.line - 1,
        token: block.lang === "" ? "```" : `\`\`\`${block.lang}`,
        reason: `a fenced block needs a checked language: ${[...KNOWN_LANGS].join(", ")}`,
      });
    } else if (SHELL_LANGS.has(block.lang)) problems.push(...(await checkShellBlock(known, doc, block)));
    else if (block.lang === "promql") problems.push(...checkPromql(known, doc, block));
    else if (block.lang === "http") problems.push(...checkHttp(known, doc, block));
    else if (block.lang === "json") problems.push(...checkJson(doc, block));
  }
  return problems;
}

/**
 * Checks the documents together: a shell variable one of them assigns a URL (README's `$API`)
 * stands for that URL in the others too, unless they assign it themselves.
 */
export async function checkDocs(known: Known, given: Doc[], options: CheckOptions): Promise<Report> {
  const shared = new Map<string, string>();
  for (const doc of given) for (const [k, v] of doc.urlVars) if (!shared.has(k)) shared.set(k, v);
  const docs = given.map((doc) => ({ ...doc, urlVars: new Map([...shared, ...doc.urlVars]) }));

  const problems: Problem[] = [];
  for (const doc of docs) problems.push(...(await checkDoc(known, doc)));
  const blocks = docs.flatMap((d) => d.blocks);
  problems.push(...typecheck(blocks.filter((b) => TS_LANGS.has(b.lang) || JS_LANGS.has(b.lang))));
  const python = blocks.filter((b) => b.lang === "python");
  if (options.python) problems.push(...runPython(python));
  return { ...report(docs, problems), notRun: options.python ? [] : python };
}

/** Sorted, and one report per mistake. */
export function report(docs: Doc[], problems: Problem[]): Omit<Report, "notRun"> {
  // A curl line's route is also seen by the name scan ("/x" and "GET /x"), a promql block's metric
  // by both checkers: keep the more specific.
  const kept = problems.filter(
    (p) =>
      !problems.some(
        (q) =>
          q !== p &&
          q.doc === p.doc &&
          q.line === p.line &&
          q.token !== p.token &&
          q.token.endsWith(` ${p.token}`),
      ),
  );
  // Problems outside any document (the compiler's own setup) are reported too, after the rest.
  const byDoc = new Map<string, string[]>(docs.map((d) => [d.name, []]));
  const seen = new Set<string>();
  for (const p of kept.sort((a, b) => a.line - b.line)) {
    const text = show(p);
    if (seen.has(text)) continue;
    seen.add(text);
    const list = byDoc.get(p.doc) ?? [];
    list.push(text);
    byDoc.set(p.doc, list);
  }
  return { problems: [...byDoc.values()].flat(), byDoc };
}

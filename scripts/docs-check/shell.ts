/**
 * Shell in the docs (`sh`, `bash`, `shell`, `console` blocks, and inline commands): `bash -n`, then
 * each simple command on its own — `continuum-webhooks …` parsed by the real commander program,
 * `curl`'s method and path matched against the server's routes, `npm` against package.json. A
 * reader pastes these; each must work as written.
 */
import { spawnSync } from "node:child_process";
import type { Command } from "commander";
import type { Block, Doc, Problem } from "./document.js";
import { jsonError } from "./formats.js";
import { allCommands, type Known } from "./known.js";
import { checkRoute, cliArgs, expandUrlVars } from "./names.js";

export const SHELL_LANGS = new Set(["sh", "bash", "shell", "console"]);

/** Commands whose flags are their own business (a `--since` in `journalctl --since` is not ours). */
export const OTHER_TOOLS = new Set(
  "curl npm npx node journalctl systemctl docker jq psql redis-cli git python python3 pip kubectl promtool tsc vitest bash sh go ruby gem bundle apt apt-get uvicorn flask gunicorn openssl".split(
    " ",
  ),
);
const NPM_BUILTINS = new Set(
  "ci install i exec x pack publish version audit ls outdated update init".split(" "),
);

interface ShellParse {
  commands: string[][];
  incomplete: boolean;
}

/** Words of each simple command, `$(…)` bodies included as commands of their own; comments dropped. */
export function shellSplit(text: string): ShellParse {
  const commands: string[][] = [];
  let words: string[] = [];
  let word: string | null = null;
  let i = 0;
  const endWord = () => {
    if (word !== null) words.push(word);
    word = null;
  };
  const endCommand = () => {
    endWord();
    if (words.length > 0) commands.push(words);
    words = [];
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === "'" || c === '"') {
      const end = c === "'" ? text.indexOf("'", i + 1) : findDoubleQuoteEnd(text, i + 1);
      if (end < 0) return { commands, incomplete: true };
      const inner = text.slice(i + 1, end);
      if (c === '"') for (const sub of substitutions(inner)) commands.push(...shellSplit(sub).commands);
      word = (word ?? "") + inner;
      i = end + 1;
    } else if (c === "$" && text[i + 1] === "(") {
      const end = matchParen(text, i + 1);
      if (end < 0) return { commands, incomplete: true };
      commands.push(...shellSplit(text.slice(i + 2, end)).commands);
      word = `${word ?? ""}${text.slice(i, end + 1)}`;
      i = end + 1;
    } else if (c === "\\" && i + 1 < text.length) {
      word = (word ?? "") + text[i + 1];
      i += 2;
    } else if (c === "#" && word === null) {
      const nl = text.indexOf("\n", i);
      i = nl < 0 ? text.length : nl;
    } else if (/[;&|\n()]/.test(c)) {
      endCommand();
      i += 1;
    } else if (/\s/.test(c)) {
      endWord();
      i += 1;
    } else {
      word = (word ?? "") + c;
      i += 1;
    }
  }
  endCommand();
  return { commands, incomplete: false };
}

function findDoubleQuoteEnd(text: string, from: number): number {
  for (let i = from; i < text.length; i += 1) {
    if (text[i] === "\\") i += 1;
    else if (text[i] === "$" && text[i + 1] === "(") {
      i = matchParen(text, i + 1);
      if (i < 0) return -1;
    } else if (text[i] === '"') return i;
  }
  return -1;
}

function matchParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i += 1) {
    const c = text[i];
    if (c === "'" || c === '"') {
      const end = c === "'" ? text.indexOf("'", i + 1) : findDoubleQuoteEnd(text, i + 1);
      if (end < 0) return -1;
      i = end;
    } else if (c === "(") depth += 1;
    else if (c === ")" && --depth === 0) return i;
  }
  return -1;
}

function substitutions(text: string): string[] {
  const out: string[] = [];
  for (let i = text.indexOf("$("); i >= 0; i = text.indexOf("$(", i + 1)) {
    const end = matchParen(text, i + 1);
    if (end > 0) out.push(text.slice(i + 2, end));
  }
  return out;
}

const SHELL_KEYWORDS = new Set(
  "if then else elif fi for while until do done case esac ! time export sudo env exec".split(" "),
);

/** Static checks of each command in a piece of shell (the `sh` rules), with no CLI parsing. */
export function checkShellText(known: Known, doc: Doc, line: number, text: string): Problem[] {
  return shellCommands(text).flatMap((words) => checkCommand(known, doc, line, words).sync);
}

function shellCommands(text: string): string[][] {
  return shellSplit(text).commands.map((words) => {
    let k = 0;
    while (k < words.length && (SHELL_KEYWORDS.has(words[k]!) || /^[A-Za-z_]\w*=/.test(words[k]!))) k += 1;
    return words.slice(k);
  });
}

/** `sync`: problems found without commander; `cli`: arguments to parse with the real program. */
function checkCommand(
  known: Known,
  doc: Doc,
  line: number,
  words: string[],
): { sync: Problem[]; cli: string[] | null } {
  const problems: Problem[] = [];
  const add = (token: string, reason: string) => problems.push({ doc: doc.name, line, token, reason });
  const cli = cliArgs(words);
  if (cli) return { sync: [], cli };
  const [tool, ...args] = words;
  if (tool === "curl") {
    let method: string | undefined;
    let url: string | undefined;
    for (let k = 0; k < args.length; k += 1) {
      const a = args[k]!;
      if (a === "-X" || a === "--request") method = args[++k];
      else if (/^-X[A-Z]+$/.test(a)) method = a.slice(2);
      else if (/^(-d|--data|--data-raw|--data-binary|--json|-F|--form)$/.test(a)) {
        method ??= "POST";
        const data = args[++k] ?? "";
        const error = /^\s*[[{]/.test(data) && !data.includes("$") ? jsonError(data) : null;
        if (error) add(data, `curl body: ${error}`);
      } else if (a === "-I" || a === "--head") method = "HEAD";
      else if (/^(-H|--header|-o|--output|-w|--write-out|-u|--user|-m|--max-time|-A)$/.test(a)) k += 1;
      else if (!a.startsWith("-")) url ??= a;
    }
    if (url === undefined) {
      add("curl", "no URL");
    } else {
      const expanded = expandUrlVars(doc, url);
      const m = expanded.match(/^https?:\/\/[^/]+(\/.*)?$/);
      const path = m ? (m[1] ?? "/") : expanded.startsWith("/") ? expanded : null;
      if (path === null) add(url, "cannot tell the path: assign the variable a URL in this document");
      else {
        const reason = checkRoute(known, path, method ?? "GET");
        if (reason) add(`${method ?? "GET"} ${path}`, reason);
      }
    }
  } else if (tool === "npm") {
    const [sub, script] = args;
    if (sub === "run" || sub === "run-script") {
      if (script === undefined || !known.scripts.has(script))
        add(`npm run ${script}`, "no such script in package.json");
    } else if (sub === "test" || sub === "t" || sub === "start") {
      if (!known.scripts.has(sub === "t" ? "test" : sub)) add(`npm ${sub}`, "no such script in package.json");
    } else if (sub === undefined || !NPM_BUILTINS.has(sub)) {
      add(`npm ${sub}`, "not an npm command the docs are expected to use");
    }
  }
  return { sync: problems, cli: null };
}

function silence(cmd: Command): Command {
  for (const c of allCommands(cmd)) {
    c.configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} });
    c.exitOverride();
    if ((c as unknown as { _actionHandler: unknown })._actionHandler) c.action(() => {});
  }
  return cmd;
}

async function parseCli(known: Known, args: string[]): Promise<string | null> {
  try {
    await silence(known.buildProgram()).parseAsync(args, { from: "user" });
    return null;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (!e.code?.startsWith("commander.")) throw err;
    return e.exitCode === 0 ? null : (e.message ?? e.code);
  }
}

/** Logical lines of a shell block: continuations and multi-line quotes joined, console prompts read. */
export function logicalLines(block: Block): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  let current: { line: number; text: string } | null = null;
  let inCommand = block.lang !== "console";
  block.lines.forEach((raw, k) => {
    let text = raw;
    if (block.lang === "console") {
      if (current === null) {
        inCommand = raw.startsWith("$ ");
        if (!inCommand) return;
        text = raw.slice(2);
      } else text = raw.replace(/^> /, "");
    }
    if (!inCommand) return;
    if (current === null) current = { line: block.line + k, text };
    else if (current.text.endsWith("\\")) current.text = `${current.text.slice(0, -1)} ${text}`;
    else current.text = `${current.text}\n${text}`;
    if (!current.text.endsWith("\\") && !shellSplit(current.text).incomplete) {
      out.push(current);
      current = null;
    }
  });
  if (current) out.push(current);
  return out;
}

export async function checkShellBlock(known: Known, doc: Doc, block: Block): Promise<Problem[]> {
  const problems: Problem[] = [];
  const lines = logicalLines(block);
  const syntax = spawnSync("bash", ["-n"], { input: lines.map((l) => l.text).join("\n"), encoding: "utf8" });
  if (syntax.status !== 0) {
    problems.push({ doc: doc.name, line: block.line, token: "bash -n", reason: syntax.stderr.trim() });
  }
  for (const { line, text } of lines) {
    for (const words of shellCommands(text)) {
      const { sync, cli } = checkCommand(known, doc, line, words);
      problems.push(...sync);
      if (cli) {
        const error = await parseCli(known, cli);
        if (error) problems.push({ doc: doc.name, line, token: words.join(" "), reason: error });
      }
    }
  }
  return problems;
}

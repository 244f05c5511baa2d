/**
 * The TypeScript and JavaScript blocks, type-checked together in one strict program, one file per
 * block, with `continuum-webhooks` and `continuum-webhooks/verify` resolving to src/: an example
 * that does not compile against today's API is one the reader cannot use. A JS block must be plain
 * JavaScript, checked with checkJs except for the annotations JavaScript cannot write.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { type Block, type Problem, slug } from "./document.js";
import { ENTRY_POINTS, ROOT, withScratch } from "./sources.js";

export const TS_LANGS = new Set(["ts", "typescript"]);
export const JS_LANGS = new Set(["js", "javascript"]);

export function typecheck(blocks: Block[]): Problem[] {
  if (blocks.length === 0) return [];
  return withScratch("ts", (dir) => typecheckIn(dir, blocks));
}

function typecheckIn(dir: string, blocks: Block[]): Problem[] {
  const byFile = new Map<string, Block>();
  for (const block of blocks) {
    const file = join(dir, `${slug(block)}.${TS_LANGS.has(block.lang) ? "ts" : "mjs"}`);
    // `export {}` makes every block a module, so top-level await is allowed.
    writeFileSync(file, `${block.lines.join("\n")}\nexport {};\n`);
    byFile.set(file, block);
  }
  writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
  const paths = Object.fromEntries(
    Object.entries(ENTRY_POINTS).map(([name, file]) => [name, [join(ROOT, file)]]),
  );
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        lib: ["ES2023"],
        types: ["node"],
        strict: true,
        noUncheckedIndexedAccess: true,
        allowJs: true,
        checkJs: true,
        skipLibCheck: true,
        noEmit: true,
        paths,
      },
      files: [...byFile.keys()],
    }),
  );
  const config = ts.getParsedCommandLineOfConfigFile(
    join(dir, "tsconfig.json"),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
      },
    },
  );
  if (!config) throw new Error("cannot read the temporary tsconfig.json");
  const program = ts.createProgram(config.fileNames, config.options);
  const problems: Problem[] = [];
  for (const d of [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()]) {
    problems.push({
      doc: "tsconfig",
      line: 0,
      token: `TS${d.code}`,
      reason: ts.flattenDiagnosticMessageText(d.messageText, " "),
    });
  }
  for (const [file, block] of byFile) {
    const source = program.getSourceFile(file);
    if (!source) throw new Error(`${file} is not in the program`);
    for (const d of ts.getPreEmitDiagnostics(program, source)) {
      // A JS block is JavaScript: it need not spell out types TypeScript cannot infer.
      if (file.endsWith(".mjs") && d.code >= 7000 && d.code < 8000) continue;
      const at = d.start === undefined ? 0 : source.getLineAndCharacterOfPosition(d.start).line;
      problems.push({
        doc: block.doc,
        line: block.line + at,
        token: `TS${d.code}`,
        reason: ts.flattenDiagnosticMessageText(d.messageText, " "),
      });
    }
  }
  // The blocks must really be checked against src/, not against a stale dist/.
  for (const [name, target] of Object.entries(ENTRY_POINTS)) {
    const resolved = ts.resolveModuleName(name, join(dir, "x.ts"), config.options, ts.sys).resolvedModule;
    if (resolved?.resolvedFileName !== join(ROOT, target)) {
      problems.push({
        doc: "tsconfig",
        line: 0,
        token: name,
        reason: `resolves to ${resolved?.resolvedFileName}`,
      });
    }
  }
  return problems;
}

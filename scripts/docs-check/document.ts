/**
 * A Markdown document as the checker sees it: fenced blocks with their language and first line,
 * the prose around them, and the shell variables it assigns a URL (so `curl "$API/webhooks"` can
 * be read as a route). Every check reports a Problem against a document line.
 */
import { readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { ROOT } from "./sources.js";

export interface Block {
  doc: string;
  lang: string;
  /** 1-based line of the block's first content line. */
  line: number;
  lines: string[];
}

export interface Doc {
  name: string;
  /** False when the file could not be read (its text is then empty). */
  exists: boolean;
  blocks: Block[];
  /** Lines outside fenced blocks, 1-based. */
  prose: Array<{ line: number; text: string }>;
  /** Shell variables assigned a URL in the document (`export API=http://…/api/v1`) → its path. */
  urlVars: Map<string, string>;
}

export interface Problem {
  doc: string;
  line: number;
  token: string;
  reason: string;
}

export const show = (p: Problem): string => `${p.doc}:${p.line}: ${p.token} — ${p.reason}`;

export function parseDoc(name: string, text: string, exists = true): Doc {
  const lines = text.split("\n");
  const blocks: Block[] = [];
  const prose: Doc["prose"] = [];
  let open: { fence: string; indent: number; block: Block } | null = null;
  lines.forEach((raw, i) => {
    if (open) {
      const close = raw.match(/^(\s*)(`{3,}|~{3,})\s*$/);
      if (close && close[2]!.startsWith(open.fence)) open = null;
      else open.block.lines.push(raw.slice(Math.min(open.indent, raw.search(/\S|$/))));
      return;
    }
    const fence = raw.match(/^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/);
    if (fence) {
      const block = { doc: name, lang: fence[3]!.toLowerCase(), line: i + 2, lines: [] };
      blocks.push(block);
      open = { fence: fence[2]!, indent: fence[1]!.length, block };
    } else prose.push({ line: i + 1, text: raw });
  });
  const urlVars = new Map<string, string>();
  for (const m of text.matchAll(/\b([A-Za-z_]\w*)=["']?https?:\/\/[^/\s"']+(\/[^\s"']*)?/g)) {
    urlVars.set(m[1]!, (m[2] ?? "").replace(/\/$/, ""));
  }
  return { name, exists, blocks, prose, urlVars };
}

/** Reads documents named relative to the repository (or absolute); a missing one is empty. */
export function readDocs(names: string[]): Doc[] {
  return names.map((name) => {
    try {
      return parseDoc(name, readFileSync(isAbsolute(name) ? name : join(ROOT, name), "utf8"));
    } catch {
      return parseDoc(name, "", false);
    }
  });
}

/** A file name for a block, unique across documents, that says where the block came from. */
export function slug(block: Block): string {
  return `${block.doc.replace(/[^A-Za-z0-9]+/g, "_")}_L${block.line}`;
}

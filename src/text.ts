/**
 * Text both stores keep exactly. PostgreSQL refuses U+0000 in TEXT and in JSONB, and turns an
 * unpaired UTF-16 surrogate into U+FFFD (or refuses it in JSONB); SQLite would keep either. So
 * the input rules refuse both, for every backend alike, naming where they were found.
 */

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export const UNSTORABLE_TEXT =
  "holds a NUL character (U+0000) or an unpaired surrogate (U+D800 to U+DFFF alone), which cannot be stored: remove it";

export function isStorableText(s: string): boolean {
  return !s.includes("\u0000") && !LONE_SURROGATE.test(s);
}

/**
 * The path (`data.items[2].name`) of the first key or string in `value` that is not storable
 * text, or null. Iterative: a value may nest deeper than the stack.
 */
export function unstorablePath(value: unknown, root: string): string | null {
  const stack: Array<[unknown, string]> = [[value, root]];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v === "string") {
      if (!isStorableText(v)) return path;
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${path}[${i}]`]);
    } else if (typeof v === "object" && v !== null) {
      const keys = Object.keys(v);
      for (let i = keys.length - 1; i >= 0; i--) {
        const k = keys[i]!;
        // The key itself is the problem: name the object that holds it.
        if (!isStorableText(k)) return path;
        stack.push([(v as Record<string, unknown>)[k], `${path}.${k}`]);
      }
    }
  }
  return null;
}

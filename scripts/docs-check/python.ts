/**
 * The python blocks, compiled and executed with Debian's /usr/bin/python3 as a module not named
 * `__main__` (imports and definitions run, what sits under `if __name__ == "__main__":` does not),
 * with every non-loopback connection refused. A block that defines
 * `verify_delivery(body, headers, secrets, now)` must also pass every vector of
 * docs/test-vectors.json. The blocks import Flask and friends: whether this machine has them is the
 * caller's question (test/helpers/toolchains.ts, "python-frameworks").
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { PYTHON } from "../../test/helpers/toolchains.js";
import { type Block, type Problem, slug } from "./document.js";
import { ROOT, TEST_VECTORS, withScratch } from "./sources.js";

const PY_DRIVER = `
import json, socket, sys, traceback
def _local(host):
    return host in ("localhost", "::1") or str(host).startswith("127.")
_getaddrinfo, _connect = socket.getaddrinfo, socket.socket.connect
def getaddrinfo(host, *a, **k):
    if not _local(host):
        raise OSError("docs check: no network beyond loopback (%s)" % host)
    return _getaddrinfo(host, *a, **k)
def connect(self, address):
    if isinstance(address, tuple) and not _local(address[0]):
        raise OSError("docs check: no network beyond loopback (%s)" % (address[0],))
    return _connect(self, address)
socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
# What a block prints must not garble the report this driver prints.
sys.stdout = sys.stderr
out = []
def check_vectors(path, verify):
    """A block defining verify_delivery(body, headers, secrets, now) must pass docs/test-vectors.json."""
    vectors = json.load(open(sys.argv[1], encoding="utf-8"))
    line = verify.__code__.co_firstlineno
    failures = []
    def fail(name, message):
        failures.append("vector %r: %s" % (name, message))
    for v in vectors["positive"]:
        for family, drop in (("both", ()), ("continuum", ("webhook-",)), ("standard", ("x-continuum-",))):
            headers = {k: h for k, h in v["headers"].items() if not k.lower().startswith(drop)}
            try:
                if verify(v["body"].encode("utf-8"), headers, [v["secret"]], v["now"]) != v["payload"]:
                    fail(v["name"], "%s headers: wrong payload" % family)
            except Exception as e:
                fail(v["name"], "%s headers: refused (%s: %s)" % (family, type(e).__name__, e))
    for v in vectors["negative"]:
        try:
            verify(v["body"].encode("utf-8"), v["headers"], [v["secret"]], v["now"])
            fail(v["name"], "accepted")
        except Exception as e:
            if getattr(e, "reason", None) != v["reason"]:
                fail(v["name"], "refused with %r, expected reason %r" % (getattr(e, "reason", e), v["reason"]))
    if failures:
        more = " (and %d more)" % (len(failures) - 3) if len(failures) > 3 else ""
        out.append({"file": path, "line": line, "error": "verify_delivery: " + "; ".join(failures[:3]) + more})
for path in sys.argv[2:]:
    source = open(path, encoding="utf-8").read()
    try:
        code = compile(source, path, "exec")
        namespace = {"__name__": "__doc_block__", "__file__": path}
        exec(code, namespace)
        verify = namespace.get("verify_delivery")
        if callable(verify):
            check_vectors(path, verify)
    except BaseException as e:
        line = getattr(e, "lineno", None)
        if not isinstance(e, SyntaxError):
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == path]
            line = frames[-1].lineno if frames else None
        out.append({"file": path, "line": line or 1, "error": "%s: %s" % (type(e).__name__, e)})
sys.__stdout__.write(json.dumps(out))
`;

export function runPython(blocks: Block[]): Problem[] {
  if (blocks.length === 0) return [];
  return withScratch("python", (dir) => {
    const byFile = new Map<string, Block>();
    for (const block of blocks) {
      const file = join(dir, `${slug(block)}.py`);
      writeFileSync(file, `${block.lines.join("\n")}\n`);
      byFile.set(file, block);
    }
    const run = spawnSync(PYTHON, ["-c", PY_DRIVER, join(ROOT, TEST_VECTORS), ...byFile.keys()], {
      encoding: "utf8",
      timeout: 20_000,
      cwd: dir,
      env: { PATH: process.env.PATH ?? "", PYTHONDONTWRITEBYTECODE: "1" },
    });
    if (run.status !== 0) throw new Error(`${PYTHON} failed: ${run.stderr || run.error?.message}`);
    const results = JSON.parse(run.stdout) as Array<{ file: string; line: number; error: string }>;
    return results.map((r) => {
      const block = byFile.get(r.file)!;
      return { doc: block.doc, line: block.line + r.line - 1, token: "python", reason: r.error };
    });
  });
}

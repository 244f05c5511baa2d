import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { generateSecret, signWebhook } from "../../src/signer.js";
import { BIN, cleanEnv, freePort, runCli } from "../helpers/cli.js";

async function startCli(args: string[]) {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: cleanEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const deadline = Date.now() + 10_000;
  while (!err.includes("receiving on") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  return {
    out: () => out,
    stop: () =>
      new Promise<number | null>((r) => {
        child.once("exit", r);
        child.kill("SIGTERM");
      }),
  };
}

describe("continuum-webhooks receiver", () => {
  it("verifies, de-duplicates and prints each delivery; fails on purpose when asked", async () => {
    const secret = generateSecret();
    const port = await freePort();
    const rx = await startCli(["receiver", "--port", String(port), "--secret", secret, "--path", "/hook"]);
    const post = (body: string, headers: Record<string, string>) =>
      fetch(`http://127.0.0.1:${port}/hook`, { method: "POST", body, headers });
    const signed = signWebhook({
      secret,
      payload: { id: "evt_1", event: "memory.created", created_at: "x", user_id: "u", data: {} },
      deliveryId: "dlv_test_1",
      timestamp: Math.floor(Date.now() / 1000),
      event: "memory.created",
    });
    try {
      expect((await post(signed.body, signed.headers)).status).toBe(200);
      expect((await post(signed.body, signed.headers)).status).toBe(200);
      const tampered = await post(signed.body.replace("memory.created", "memory.deleted"), signed.headers);
      expect(tampered.status).toBe(400);
      const lines = rx.out().trim().split("\n");
      expect(lines).toHaveLength(3);
      expect(lines[0]).toMatch(/ memory\.created dlv_test_1 verified evt_1$/);
      expect(lines[1]).toMatch(/ dlv_test_1 verified, duplicate/);
      expect(lines[2]).toMatch(/ dlv_test_1 rejected: bad_signature$/);
    } finally {
      expect(await rx.stop()).toBe(0);
    }

    const failing = await startCli([
      "receiver",
      "--port",
      String(port),
      "--secret",
      secret,
      "--fail-rate",
      "1",
      "--fail-status",
      "503",
    ]);
    try {
      expect(
        (
          await fetch(`http://127.0.0.1:${port}/`, {
            method: "POST",
            body: signed.body,
            headers: signed.headers,
          })
        ).status,
      ).toBe(503);
      expect(failing.out()).toContain("answered 503 (--fail-rate)");
    } finally {
      await failing.stop();
    }
  });

  it("refuses a malformed secret or option with one line and exit 2", async () => {
    for (const args of [
      ["receiver", "--secret", "not-a-secret"],
      ["receiver", "--secret", generateSecret(), "--fail-rate", "2"],
      ["receiver", "--secret", generateSecret(), "--port", "http"],
      ["receiver"],
    ]) {
      const r = await runCli(args);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  }, 90_000); // several CLI starts one after another, on a shared machine
});

/**
 * The `continuum-webhooks` command, importable without running it (src/cli.ts runs it). Every failure the user can cause ends in ONE line on stderr:
 * exit 2 for a usage or configuration mistake, 1 for a runtime failure (database unreachable…).
 */
import { Command, CommanderError } from "commander";
import { apiKeyCreate, apiKeyList, apiKeyRevoke } from "./commands/api-key.js";
import { UsageError } from "./commands/errors.js";
import { configFromOptions, withConfigOptions } from "./commands/options.js";
import { parseReceiverOptions, startReceiver } from "./commands/receiver.js";
import { serve } from "./commands/serve.js";
import { worker } from "./commands/worker.js";
import { ConfigError } from "./config.js";
import { migrate, openStore } from "./store/index.js";

const NAME = "continuum-webhooks";

function fail(message: string, code: number): never {
  process.stderr.write(`${NAME}: ${message.split("\n")[0]}\n`);
  process.exit(code);
}

function oneLine(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return oneLine(err.errors[0]);
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

/** Wraps an action so that config, usage and runtime errors each end as one line. */
function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      if (err instanceof ConfigError || err instanceof UsageError) fail(err.message, 2);
      fail(oneLine(err), 1);
    }
  };
}

export function buildProgram(): Command {
  const program = new Command(NAME)
    .description("Webhook delivery for CONTINUUM events: signed, retried, circuit-broken, durable.")
    .version("0.1.0")
    .showSuggestionAfterError(true)
    .configureOutput({
      outputError: (str, write) => write(`${NAME}: ${str.replace(/^error: /, "").split("\n")[0]}\n`),
    })
    .exitOverride();

  withConfigOptions(
    program
      .command("serve")
      .description("run the HTTP API (and, in embedded mode, the delivery workers)")
      .option("--no-migrate", "do not apply schema migrations at start")
      .option("--no-workers", "API only: leave delivery to `continuum-webhooks worker` processes"),
    true,
  ).action(
    action(async (opts: Record<string, unknown>) => {
      const config = configFromOptions(opts);
      await serve(config, { migrate: opts.migrate !== false, workers: opts.workers !== false });
    }),
  );

  withConfigOptions(
    program
      .command("worker")
      .description("run delivery workers only, with /health and /metrics on --metrics-port")
      .option("--no-migrate", "do not apply schema migrations at start"),
    true,
  ).action(
    action(async (opts: Record<string, unknown>) => {
      await worker(configFromOptions(opts), { migrate: opts.migrate !== false });
    }),
  );

  withConfigOptions(
    program.command("migrate").description("apply pending schema migrations and exit"),
    false,
  ).action(
    action(async (opts: Record<string, unknown>) => {
      const config = configFromOptions(opts);
      const store = openStore({ databaseUrl: config.databaseUrl, sqlitePath: config.sqlitePath });
      try {
        const { applied, total } = await migrate(store);
        process.stdout.write(
          applied.length > 0
            ? `applied ${applied.length} migration(s): ${applied.join(", ")} (${store.location})\n`
            : `schema is up to date: ${total} migration(s) (${store.location})\n`,
        );
      } finally {
        await store.close();
      }
    }),
  );

  program
    .command("receiver")
    .description("a local endpoint that verifies and prints each delivery (for trying the service out)")
    .option("--port <n>", "port to listen on", "3000")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--secret <whsec>", "the webhook's secret; comma-separate two during a rotation")
    .option("--path <path>", "the path deliveries are POSTed to", "/")
    .option(
      "--fail-rate <fraction>",
      "answer this share of deliveries with --fail-status, to rehearse retries",
      "0",
    )
    .option("--fail-status <code>", "the status --fail-rate answers with", "500")
    .action(
      action(async (opts: Record<string, unknown>) => {
        const options = parseReceiverOptions(opts);
        const r = await startReceiver(options);
        process.stderr.write(
          `receiving on http://${options.host}:${r.port}${options.path} (Ctrl-C to stop)\n`,
        );
        const stop = () => void r.close().then(() => process.exit(0));
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      }),
    );

  const apiKey = program.command("api-key").description("create, list and revoke API keys");
  withConfigOptions(
    apiKey
      .command("create")
      .description("create an API key and print it once")
      .requiredOption("--user <id>", "the user the key acts for")
      .option("--admin", "the key may act for every user", false)
      .option("--name <name>", "a label to recognise the key by"),
    false,
  ).action(
    action(async (opts: Record<string, unknown>) => {
      await apiKeyCreate(configFromOptions(opts), {
        user: String(opts.user),
        admin: opts.admin === true,
        name: typeof opts.name === "string" ? opts.name : undefined,
      });
    }),
  );
  withConfigOptions(
    apiKey
      .command("list")
      .description("list API keys (never the keys themselves)")
      .option("--json", "JSON output"),
    false,
  ).action(
    action(async (opts: Record<string, unknown>) => {
      await apiKeyList(configFromOptions(opts), { json: opts.json === true });
    }),
  );
  withConfigOptions(
    apiKey.command("revoke").description("revoke an API key").argument("<id>", "key id (key_…)"),
    false,
  ).action(
    action(async (id: string, opts: Record<string, unknown>) => {
      await apiKeyRevoke(configFromOptions(opts), id);
    }),
  );

  for (const cmd of [program, apiKey, ...program.commands, ...apiKey.commands]) {
    cmd.exitOverride().showSuggestionAfterError(true);
    cmd.configureOutput(program.configureOutput());
  }
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  if (argv.length <= 2) {
    program.outputHelp({ error: true });
    process.exit(2);
  }
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version are not errors; everything else commander rejects is a usage mistake.
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    fail(oneLine(err), 1);
  }
}

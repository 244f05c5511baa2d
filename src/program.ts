/**
 * The `continuum-webhooks` command, importable without running it (src/cli.ts runs it). Every failure the user can cause ends in ONE line on stderr:
 * exit 2 for a usage or configuration mistake, 1 for a runtime failure (database unreachable…).
 */
import { Command, CommanderError } from "commander";
import { apiKeyCreate, apiKeyList, apiKeyRevoke } from "./commands/api-key.js";
import { describeStartupError, UsageError } from "./commands/errors.js";
import { cliConfigFromOptions, withConfigOptions } from "./commands/options.js";
import { runUntilSignalled } from "./commands/process.js";
import { parseReceiverOptions, startReceiver } from "./commands/receiver.js";
import { type Config, ConfigError } from "./config.js";
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

/**
 * An action that runs on the configuration: loaded (and refused, exit 2) before anything is
 * opened or written, then used to say which setting a start-up failure comes from.
 */
function configured(
  run: (config: Readonly<Config>, opts: Record<string, unknown>, args: string[]) => Promise<void>,
): (...params: unknown[]) => Promise<void> {
  return action(async (...params: unknown[]) => {
    // Commander calls an action with the positional arguments, the options, then the command.
    const command = params.at(-1) as Command;
    const opts = command.opts();
    const { config, flagNames } = cliConfigFromOptions(opts);
    try {
      await run(config, opts, params.slice(0, -2) as string[]);
    } catch (err) {
      const described = describeStartupError(err, config, { flagNames });
      if (described !== null) fail(described, 1);
      throw err;
    }
  });
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
    "serve",
  ).action(
    configured(async (config, opts) => {
      await runUntilSignalled(config, {
        role: "serve",
        migrate: opts.migrate !== false,
        workers: opts.workers !== false,
      });
    }),
  );

  withConfigOptions(
    program
      .command("worker")
      .description("run delivery workers only, with /health and /metrics on --metrics-port")
      .option("--no-migrate", "do not apply schema migrations at start"),
    "worker",
  ).action(
    configured(async (config, opts) => {
      await runUntilSignalled(config, { role: "worker", migrate: opts.migrate !== false, workers: true });
    }),
  );

  withConfigOptions(
    program.command("migrate").description("apply pending schema migrations and exit"),
    "store-only",
  ).action(
    configured(async (config) => {
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
    "store-only",
  ).action(
    configured(async (config, opts) => {
      await apiKeyCreate(config, {
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
      .option("--json", "JSON output, snake_case as in the HTTP API"),
    "store-only",
  ).action(
    configured(async (config, opts) => {
      await apiKeyList(config, { json: opts.json === true });
    }),
  );
  withConfigOptions(
    apiKey.command("revoke").description("revoke an API key").argument("<id>", "key id (key_…)"),
    "store-only",
  ).action(
    configured(async (config, _opts, [id]) => {
      await apiKeyRevoke(config, id!);
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

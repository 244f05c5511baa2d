import type { Config, EnvVar } from "../config.js";

/** A mistake in what the user typed: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface StartupContext {
  /** The flag behind each variable a flag set (`DATABASE_URL` → `--db`): messages name what was typed. */
  flagNames?: Partial<Record<EnvVar, string>>;
}

interface ErrnoLike {
  code?: unknown;
  syscall?: unknown;
  port?: unknown;
  address?: unknown;
  message?: unknown;
}

/** The error that says what happened: pg and net wrap one per address tried in an AggregateError. */
function rootCause(err: unknown): ErrnoLike {
  let e = err;
  for (let i = 0; i < 5; i++) {
    if (e instanceof AggregateError && e.errors.length > 0) e = e.errors[0];
    else if (e instanceof Error && (e as ErrnoLike).code === undefined && e.cause instanceof Error)
      e = e.cause;
    else break;
  }
  return typeof e === "object" && e !== null ? (e as ErrnoLike) : {};
}

interface PgTarget {
  host: string;
  port: number;
  /** Empty when the URL leaves it to the default. */
  database: string;
  user: string;
}

function pgTarget(url: string): PgTarget | null {
  try {
    const u = new URL(url);
    const user = decodeURIComponent(u.username);
    return {
      // A unix socket directory may come as ?host=, as libpq allows.
      host: u.searchParams.get("host") ?? (u.hostname || "localhost"),
      port: u.port === "" ? 5432 : Number(u.port),
      database: decodeURIComponent(u.pathname.slice(1)),
      user,
    };
  } catch {
    return null;
  }
}

const TIMEOUT = /timeout expired|timeout exceeded|connection timeout|Connection terminated unexpectedly/i;

function describePostgres(e: ErrnoLike, url: string, name: string): string | null {
  const target = pgTarget(url);
  if (target === null) return null;
  // Host and port only: the URL may carry a password.
  const where = `PostgreSQL at ${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port} (${name})`;
  // A network error about some other address (Redis, say) is not the database's.
  if (typeof e.port === "number" && e.port !== target.port) return null;
  const message = typeof e.message === "string" ? e.message : "";
  const user = target.user === "" ? "" : ` of user "${target.user}"`;
  switch (e.code) {
    case "ECONNREFUSED":
      return `cannot connect to ${where}: connection refused; start PostgreSQL there, or point ${name} at a server that is running`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `cannot connect to ${where}: host "${target.host}" not found; check the host name in ${name}`;
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `cannot connect to ${where}: no answer; check that the host is up and that port ${target.port} is open to this machine`;
    case "28P01":
      return `${where} refused the password${user}: correct the user name or password in ${name}`;
    case "28000":
      return `${where} refused the connection${user} (${message}): check the user name in ${name}, and pg_hba.conf on the server`;
    case "3D000": {
      // PostgreSQL's own message names the database even when the URL leaves it to the default.
      const db = /database "([^"]*)"/.exec(message)?.[1] ?? target.database;
      return `${where} has no database "${db}": create it (CREATE DATABASE "${db}") or name an existing one in ${name}`;
    }
    default:
      if (e.code === undefined && TIMEOUT.test(message)) {
        return `cannot connect to ${where}: no answer in time; check that the host is up, that port ${target.port} is open to this machine, and that PostgreSQL listens there`;
      }
      return null;
  }
}

const FILE_PROBLEMS: Record<string, string> = {
  SQLITE_CANTOPEN: "unable to open the file",
  SQLITE_READONLY: "the file is read-only",
  SQLITE_PERM: "permission denied",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EROFS: "read-only file system",
  ENOTDIR: "a parent of it is not a directory",
  EISDIR: "it is a directory",
};

function describeSqlite(e: ErrnoLike, path: string, name: string): string | null {
  const problem = typeof e.code === "string" ? FILE_PROBLEMS[e.code] : undefined;
  // A port that cannot be bound is the listener's business (commands/process.ts), not the file's.
  if (problem === undefined || e.syscall === "listen" || e.syscall === "bind") return null;
  return `cannot open the SQLite database ${path} (${name}): ${problem}; make it and its directory writable by this user, or set ${name} to another path`;
}

/**
 * One line for a failure to reach the store while a command starts (PostgreSQL unreachable or
 * refusing, the SQLite file not openable) that names the setting behind it, where it pointed, and
 * what to do; null for any other error, for which the caller's generic line has to do.
 */
export function describeStartupError(
  err: unknown,
  config: Readonly<Config>,
  context: StartupContext = {},
): string | null {
  const e = rootCause(err);
  if (config.databaseUrl !== undefined) {
    return describePostgres(e, config.databaseUrl, context.flagNames?.DATABASE_URL ?? "DATABASE_URL");
  }
  return describeSqlite(e, config.sqlitePath, context.flagNames?.SQLITE_PATH ?? "SQLITE_PATH");
}

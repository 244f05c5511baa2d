/**
 * Tests that need PostgreSQL or Redis read TEST_DATABASE_URL / TEST_REDIS_URL. Unset → the suite
 * is reported as skipped; with REQUIRE_SERVICES=1 (as .ci/run sets) an unset or unreachable
 * service fails the run instead, so CI can never pass by skipping.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll } from "vitest";

export const REQUIRE_SERVICES = process.env.REQUIRE_SERVICES === "1";
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined;
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL || undefined;

export function serviceMissing(name: "TEST_DATABASE_URL" | "TEST_REDIS_URL"): boolean {
  const value = name === "TEST_DATABASE_URL" ? TEST_DATABASE_URL : TEST_REDIS_URL;
  if (value) return false;
  if (REQUIRE_SERVICES) throw new Error(`REQUIRE_SERVICES=1 but ${name} is not set`);
  return true;
}

let counter = 0;

/**
 * A fresh PostgreSQL schema for one test (or suite), dropped afterwards. Throws when the server is
 * unreachable: under REQUIRE_SERVICES that fails the run; without it, the caller only gets here
 * when TEST_DATABASE_URL is set, i.e. the developer asked for PostgreSQL tests.
 */
export async function createPgSchema(): Promise<{ url: string; schema: string; drop(): Promise<void> }> {
  if (!TEST_DATABASE_URL) throw new Error("TEST_DATABASE_URL is not set");
  const schema = `t_${process.pid}_${Date.now().toString(36)}_${counter++}_${randomBytes(3).toString("hex")}`;
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await client.end();
  }
  const url = new URL(TEST_DATABASE_URL);
  url.searchParams.set("options", `-c search_path=${schema}`);
  return {
    url: url.toString(),
    schema,
    async drop() {
      const c = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 5000 });
      await c.connect();
      try {
        await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A schema for the whole file, dropped after all its tests. */
export function pgSchemaForSuite(): () => Promise<{ url: string; schema: string }> {
  let made: Promise<{ url: string; schema: string; drop(): Promise<void> }> | undefined;
  afterAll(async () => {
    if (made) await (await made).drop();
  });
  return () => {
    made ??= createPgSchema();
    return made;
  };
}

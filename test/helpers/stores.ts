import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrate, openStore, type Store } from "../../src/store/index.js";
import { createPgSchema, serviceMissing } from "./services.js";

export interface Backend {
  name: "sqlite" | "postgres";
  /** True when this backend's service is not configured and the suite should be skipped. */
  skip: boolean;
  /** A fresh, migrated store and a cleanup that removes every trace of it. */
  open(): Promise<{ store: Store; cleanup(): Promise<void> }>;
}

export const sqliteBackend: Backend = {
  name: "sqlite",
  skip: false,
  async open() {
    const dir = mkdtempSync(join(tmpdir(), "cw-store-"));
    const store = openStore({ sqlitePath: join(dir, "test.db") });
    await migrate(store);
    return {
      store,
      async cleanup() {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

export const postgresBackend: Backend = {
  name: "postgres",
  skip: serviceMissing("TEST_DATABASE_URL"),
  async open() {
    const schema = await createPgSchema();
    const store = openStore({ databaseUrl: schema.url, pgPoolSize: 4 });
    try {
      await migrate(store);
    } catch (err) {
      await store.close();
      await schema.drop();
      throw err;
    }
    return {
      store,
      async cleanup() {
        await store.close();
        await schema.drop();
      },
    };
  },
};

export const backends: Backend[] = [sqliteBackend, postgresBackend];

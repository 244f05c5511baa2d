export * from "./api-keys.js";
export * from "./db.js";
export * from "./deliveries.js";
export { MigrationError, type MigrationOutcome, migrate } from "./migrations/index.js";
export * from "./schema.js";
export * from "./webhooks.js";

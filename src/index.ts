/** The library's public surface. */
export { type Config, ConfigError, loadConfig } from "./config.js";
export { parseDuration } from "./duration.js";
export { migrate, openStore, type Store, type StoreOptions } from "./store/index.js";

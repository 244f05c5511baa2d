/** The library's public surface. */
export { type Config, ConfigError, loadConfig } from "./config.js";
export { parseDuration } from "./duration.js";
export {
  CanonicalJsonError,
  canonicalJson,
  generateSecret,
  maskSecret,
  signBody,
  signWebhook,
} from "./signer.js";
export { migrate, openStore, type Store, type StoreOptions } from "./store/index.js";
export { validateWebhookUrl } from "./validator.js";
export { verifyWebhook, WebhookVerificationError } from "./verify.js";

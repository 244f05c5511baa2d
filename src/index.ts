/** The library's public surface. */
export { type Clock, ManualClock, systemClock } from "./clock.js";
export { type Config, ConfigError, loadConfig } from "./config.js";
export { parseDuration } from "./duration.js";
export {
  EmitError,
  type EmitInput,
  type EmitOptions,
  type EmitResult,
  Emitter,
} from "./emitter.js";
export { createEngine, type Engine, type EngineConfig, type EngineOptions } from "./engine.js";
export { type EngineEventMap, EngineEvents } from "./engine-events.js";
export {
  defaultPriority,
  EVENT_TYPES,
  type EventData,
  type EventType,
  isEventType,
  TEST_EVENT,
  type WebhookPayload,
} from "./events.js";
export { createDeliveryClient, type DeliveryClient, type DeliveryResult } from "./http-client.js";
export { createLogger, type Logger } from "./logger.js";
export { ManagerError, type Page, type TestResult, type WebhookInput, WebhookManager } from "./manager.js";
export { createMetrics } from "./metrics.js";
export {
  CanonicalJsonError,
  canonicalJson,
  generateSecret,
  maskSecret,
  signBody,
  signWebhook,
} from "./signer.js";
export { type StatsView, webhookStats } from "./stats.js";
export { migrate, openStore, type Store, type StoreOptions } from "./store/index.js";
export { validateWebhookUrl } from "./validator.js";
export { verifyWebhook, WebhookVerificationError } from "./verify.js";
export type { AttemptView, DeliveryView, WebhookView } from "./views.js";

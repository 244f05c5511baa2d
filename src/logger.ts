import { pino } from "pino";
import type { LogLevel } from "./config.js";

export type Logger = pino.Logger;

/**
 * JSON logs on stdout. Anything that could hold a credential is censored by key, wherever it
 * sits, as a second line of defence: the code never logs secrets on purpose.
 */
export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "continuum-webhooks" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          "secret",
          "*.secret",
          "previous_secret",
          "*.previous_secret",
          "api_key",
          "*.api_key",
          "authorization",
          "*.authorization",
          "headers.authorization",
          "req.headers.authorization",
          "password",
          "*.password",
        ],
        censor: "[redacted]",
      },
    },
    destination,
  );
}

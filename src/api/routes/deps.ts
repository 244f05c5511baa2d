import type { Engine } from "../../engine.js";
import type { Store } from "../../store/index.js";
import type { ErrorCode } from "../errors.js";

/** What every resource plugin needs. */
export interface RouteDeps {
  engine: Engine;
  store: Store;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /**
     * Problems this route answers besides the ones every route of its shape does (see openapi.ts):
     * documentation only, the handlers throw them.
     */
    problems?: ErrorCode[];
  }
}

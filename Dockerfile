# syntax=docker/dockerfile:1
# continuum-webhooks. By default the container is a standalone delivery worker serving /health and
# /metrics on 9090 (distributed mode: pass DATABASE_URL and REDIS_URL). For the API instead:
#   docker run -p 8080:8080 -e HEALTHCHECK_URL=http://127.0.0.1:8080/health IMAGE serve
# Stopping drains in-flight deliveries for up to 30 s (WEBHOOK_DRAIN_TIMEOUT), longer than Docker's
# default 10 s grace: use `docker stop -t 45`, compose `stop_grace_period: 45s`, or a Kubernetes
# terminationGracePeriodSeconds of 45.

ARG NODE_IMAGE=node:20-bookworm-slim

# Compile TypeScript with the full dev toolchain; only dist/ leaves this stage.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# `prepare` would run tsc before the sources are copied; the build step below compiles instead, and
# tsc needs no native module.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies only, with their native modules built for this exact base image.
FROM ${NODE_IMAGE} AS prod-deps
# A compiler for when no prebuilt binary matches (better-sqlite3, msgpackr-extract); it stays here.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts skips `prepare` (tsc is a dev dependency, absent here), which also skips the
# native modules' install scripts: `npm rebuild` runs exactly those.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3 msgpackr-extract \
 && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    SQLITE_PATH=/app/data/continuum-webhooks.db \
    HEALTHCHECK_URL=http://127.0.0.1:9090/health
WORKDIR /app
COPY --from=prod-deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json LICENSE ./
COPY bin ./bin
RUN mkdir -p /app/data && chown 1000:1000 /app/data
# The base image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
VOLUME ["/app/data"]
EXPOSE 8080 9090
# The slim image has no curl; Node 20's fetch does the probe. HEALTHCHECK_URL follows the command.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.HEALTHCHECK_URL,{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/continuum-webhooks.js"]
CMD ["worker", "--workers", "10", "--metrics-port", "9090"]

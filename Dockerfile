# syntax=docker/dockerfile:1

# Node 20 is required: the uWebSockets.js build in package.json ships native binaries for Node 20's ABI
# and needs glibc 2.36 (bookworm).

FROM node:20-bookworm-slim AS base
ENV COREPACK_ENABLE_DOWNLOAD_PROMPT=0
RUN corepack enable
WORKDIR /app

# All dependencies (dev included) to compile TypeScript.
FROM base AS deps
COPY package.json yarn.lock .yarnrc.yml ./
RUN yarn install --immutable

FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
RUN yarn build

# Production dependencies only (workspace-tools is built into Yarn 4).
FROM base AS prod-deps
COPY package.json yarn.lock .yarnrc.yml ./
RUN yarn workspaces focus --production

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=3000 \
    WS_PORT=3001
WORKDIR /app

# Application files stay owned by root (read-only for the app); only /data is writable.
# package.json is needed at run time: it carries "type": "module" for dist/**/*.js.
COPY package.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist

RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]

USER node

EXPOSE 3000 3001

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

CMD ["node", "--max-semi-space-size=1", "dist/src/main.js"]

# syntax=docker/dockerfile:1
# kseal: the CLI and the in-cluster unsealer (`kseal controller`, deploy/deployment.yaml).
#   docker build -t ghcr.io/kseal/kseal:0.1.0 .
# Build: compile TypeScript and write oclif.manifest.json, then keep only production dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY scripts ./scripts
COPY src ./src
COPY commands ./commands
COPY keys ./keys
RUN node scripts/build.mjs && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# Runtime: node and the built app only (no npm, no compilers), as an unprivileged user. The root
# filesystem can be read-only: HOME points at /tmp, which the Deployment mounts as an emptyDir.
FROM node:20-bookworm-slim
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
ENV NODE_ENV=production HOME=/tmp
WORKDIR /app
COPY --from=build /src/package.json /src/oclif.manifest.json ./
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /src/node_modules ./node_modules
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["node", "/app/bin/run.js"]
CMD ["--help"]

# syntax=docker/dockerfile:1
# kseal's images, both built from this repository (the build context is its root):
#   docker build -t ghcr.io/kseal/kseal:0.1.0 .
#       the CLI and the in-cluster unsealer (`kseal controller`, deploy/deployment.yaml): the last stage
#   docker build --target argocd-cmp -t registry.example.com/kseal-cmp:0.1.0 .
#       the Argo CD config management plugin sidecar (deploy/argocd): kseal, kustomize and sh
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

# The app on node: the built kseal only (no npm, no compilers). Runs as any uid, with or without a
# passwd entry; HOME points at /tmp, which the Deployment mounts as an emptyDir, so the root
# filesystem can be read-only.
FROM node:20-bookworm-slim AS app
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
ENV NODE_ENV=production HOME=/tmp
WORKDIR /app
COPY --from=build /src/package.json /src/oclif.manifest.json ./
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /src/node_modules ./node_modules

# The Argo CD sidecar: kseal and kseal-krm on PATH, kustomize beside them, as Argo CD's user 999.
# Argo CD starts it with its own /var/run/argocd/argocd-cmp-server (deploy/argocd/repo-server-patch.yaml).
FROM registry.k8s.io/kustomize/kustomize:v5.5.0 AS kustomize
FROM app AS argocd-cmp
RUN ln -s /app/bin/run.js /usr/local/bin/kseal && ln -s /app/bin/kseal-krm.js /usr/local/bin/kseal-krm
COPY --from=kustomize /app/kustomize /usr/local/bin/kustomize
USER 999
WORKDIR /home/argocd

# The kseal image: the CLI, and `kseal controller` as deploy/deployment.yaml runs it, as uid 65532.
FROM app
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["node", "/app/bin/run.js"]
CMD ["--help"]

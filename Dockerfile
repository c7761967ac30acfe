# Moat: build with the dev toolchain, run with production dependencies only, as a non-root user.
#   docker build -t moat .
#   docker run -v $PWD/policies:/etc/moat moat --config /etc/moat/example.yaml
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
# openssl: `moat certs` makes development certificates with it. libjemalloc2: an allocator that
# gives back what a reconnect storm's TLS handshakes allocated, at some CPU per message; off unless
# the container is run with -e LD_PRELOAD=libjemalloc.so.2 -e MALLOC_CONF=background_thread:true
# (docs/tuning.md).
RUN apt-get update && apt-get install -y --no-install-recommends openssl libjemalloc2 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY policies ./policies
USER node
EXPOSE 1883 8883 9464
# --no-memory-reducer: V8 would pause a quiet proxy to shrink its heap; --max-semi-space-size=4:
# a young generation that a reconnect storm does not leave at 32 MiB (docs/tuning.md).
ENTRYPOINT ["node", "--no-memory-reducer", "--max-semi-space-size=4", "/app/dist/cli.js"]
CMD ["--config", "/etc/moat/moat.yaml"]

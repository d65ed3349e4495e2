# distinctly as a container: `docker build -t distinctly .`, then e.g.
#   docker run --rm -e KAFKA_SERVICE_INTERNAL_HOST=broker:9092 \
#     -e KAFKA_SERVICE_INPUT_TOPIC=events -e KAFKA_SERVICE_OUTPUT_TOPIC=uniques distinctly
# The default command is the long-running service (`distinctly run`); any other
# subcommand works too (`docker run --rm -i distinctly count < events.jsonl`).
# docker-compose-kafka-connect.yml builds and runs it with Kafka, Kafka Connect,
# Prometheus and Grafana.

# --- build -------------------------------------------------------------------
FROM rust:1-bookworm AS build
# rdkafka-sys builds librdkafka from source: C toolchain and make (in the
# image), pkg-config and the OpenSSL headers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependencies only, in a layer that is rebuilt only when Cargo.toml or
# Cargo.lock change: build the crate's dependency graph against stub sources.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/counters.rs \
 && cargo build --release --locked --bin distinctly \
 && rm -rf src benches

# The real sources. (touch: COPY keeps the files' own mtimes, which may be
# older than the stub build's outputs.)
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin distinctly \
 && install -m 0755 target/release/distinctly /usr/local/bin/distinctly

# --- runtime -----------------------------------------------------------------
FROM debian:bookworm-slim
# libssl3: librdkafka's TLS (SASL_SSL to managed Kafka); CA certificates to
# verify brokers. zlib is linked in statically.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 distinctly \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin distinctly
COPY --from=build /usr/local/bin/distinctly /usr/local/bin/distinctly
USER 10001:10001
# /metrics, /healthz and /readyz (DISTINCTLY_METRICS_ADDR, default 0.0.0.0:9464).
EXPOSE 9464
# Alive = the service loop runs (`/healthz`); the image has no curl, the
# binary asks itself. Kubernetes probes /healthz and /readyz directly.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["distinctly", "healthcheck"]
ENTRYPOINT ["distinctly"]
CMD ["run"]

# Multi-stage build of both binaries. The sqlx query macros compile from the
# committed .sqlx/ data (SQLX_OFFLINE=true): no database needed at build time.
FROM rust:1-bookworm AS build
WORKDIR /src
ENV SQLX_OFFLINE=true
COPY . .
RUN cargo build --release --locked --bin docket-api --bin docket-worker

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 docket \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin docket
COPY --from=build /src/target/release/docket-api /src/target/release/docket-worker /usr/local/bin/
COPY actions.example.toml /etc/docket/actions.toml
# Numeric, so that Kubernetes' runAsNonRoot can check it without reading
# /etc/passwd (deploy/kubernetes/base: runAsUser 10001, read-only root filesystem;
# the binaries write no file).
USER 10001:10001
EXPOSE 8080 9090
ENV DOCKET_ACTIONS=/etc/docket/actions.toml
CMD ["docket-api"]

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
 && useradd --system --uid 10001 docket
COPY --from=build /src/target/release/docket-api /src/target/release/docket-worker /usr/local/bin/
COPY actions.example.toml /etc/docket/actions.toml
USER docket
ENV DOCKET_ACTIONS=/etc/docket/actions.toml
CMD ["docket-api"]

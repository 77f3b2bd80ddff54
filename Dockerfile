# syntax=docker/dockerfile:1
# Build: .ci/run runs this same cargo invocation (locked dependencies, release).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY integration-tests ./integration-tests
RUN cargo build --release --locked -p scangate --bin scangate

# Run: no Docker daemon, no shell tools needed; CA certificates for HTTPS
# registries and AWS endpoints.
FROM debian:bookworm-slim
# ca-certificates is left unpinned on purpose: it must track Debian's
# security updates of the trust store.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home scangate
COPY --from=build /src/target/release/scangate /usr/local/bin/scangate
USER 10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/scangate"]
CMD ["worker"]

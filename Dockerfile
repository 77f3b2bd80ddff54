# syntax=docker/dockerfile:1
# Base images by tag: this repository is built on machines that cannot pull,
# so no digest could be verified here. Pin them on the first build with
# `docker buildx imagetools inspect IMAGE` and put the digest in both the FROM
# line and the base.digest label below.
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG RUNTIME_DIGEST=unpinned

# Build: .ci/run runs this same cargo invocation (locked dependencies, release).
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY integration-tests ./integration-tests
RUN cargo build --release --locked -p scangate --bin scangate \
    && strip target/release/scangate

# Run: distroless (glibc, CA certificates, no shell): the worker needs no
# tools, and the health check is the binary's own `healthcheck` subcommand.
FROM ${RUNTIME_IMAGE}
ARG RUNTIME_IMAGE
ARG RUNTIME_DIGEST
LABEL org.opencontainers.image.title="scangate" \
      org.opencontainers.image.description="Container-image security gate for AWS CodePipeline" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}" \
      org.opencontainers.image.base.digest="${RUNTIME_DIGEST}"
COPY --from=build /src/target/release/scangate /usr/local/bin/scangate
# distroless :nonroot is uid 65532
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/scangate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/scangate"]
CMD ["worker"]

# syntax=docker/dockerfile:1
# Base images pinned by digest (the multi-platform index of each tag). No
# registry is reachable from this repository's build machines, so the digests
# were not pulled here; each is the one public Dockerfiles state for the tag:
# - rust:1.95-bookworm@sha256:6258907a…: FROM line of the Dockerfile of
#   github.com/Hakille-ai/Aro (and four other public Rust projects' Dockerfiles)
# - gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79…: FROM line of the
#   Dockerfile of github.com/StephanMeijer/meneerhenk (and of two other public
#   Rust projects' Dockerfiles)
# Check them on the first build with `docker buildx imagetools inspect IMAGE`;
# to move on, change the tag and its digest together (the label below reads
# them from these arguments).
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUST_DIGEST=sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG RUNTIME_DIGEST=sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f

# Build: .ci/run runs this same cargo invocation (locked dependencies, release).
FROM ${RUST_IMAGE}@${RUST_DIGEST} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY integration-tests ./integration-tests
RUN cargo build --release --locked -p scangate --bin scangate \
    && strip target/release/scangate

# Run: distroless (glibc, CA certificates, no shell): the worker needs no
# tools, and the health check is the binary's own `healthcheck` subcommand.
FROM ${RUNTIME_IMAGE}@${RUNTIME_DIGEST}
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

# The orchestrator's image: `tenantctl serve` (API, workers, rollout controller) with
# the Helm CLI its Helm step runs. Build from the repository root:
#
#   docker build -t tenantctl:$(git rev-parse --short HEAD) .
#
# Checked without a Docker engine by scripts/check_dockerfile.py (run by the tests):
# base images pinned, Helm pinned and checksum-verified, a non-root user, a health check.

# Stage 1: the release binary, built with the toolchain the CI uses.
FROM docker.io/library/rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# aws-lc-rs (the TLS and SDK crypto) builds its C part with cmake and clang.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake clang \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY state ./state
COPY templates ./templates
COPY charts ./charts
RUN cargo build --release --locked --bin tenantctl \
    && install -D -m 0755 target/release/tenantctl /out/tenantctl

# Stage 2: the Helm CLI at a pinned version, its archive checked against the
# published SHA-256 before it is unpacked.
FROM docker.io/library/debian:12.11-slim AS helm
ARG HELM_VERSION=v3.16.2
ARG HELM_SHA256=9318379b847e333460d33d291d4c088156299a26cd93d570a7f5d0c36e50b5bb
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL -o /tmp/helm.tar.gz "https://get.helm.sh/helm-${HELM_VERSION}-linux-amd64.tar.gz" \
    && echo "${HELM_SHA256}  /tmp/helm.tar.gz" | sha256sum -c - \
    && tar -xzf /tmp/helm.tar.gz -C /tmp linux-amd64/helm \
    && install -D -m 0755 /tmp/linux-amd64/helm /out/helm

# Stage 3: the runtime. Distroless: glibc, CA certificates and nothing else (no shell,
# no package manager); the `nonroot` tag runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/tenantctl /usr/local/bin/tenantctl
COPY --from=helm /out/helm /usr/local/bin/helm
# Helm keeps its cache and configuration under HOME; the user owns /home/nonroot.
ENV HOME=/home/nonroot \
    TENANTCTL_LISTEN=0.0.0.0:8080 \
    TENANTCTL_HEALTH_LISTEN=0.0.0.0:8081
USER 65532:65532
EXPOSE 8080 8081
# `tenantctl probe` does what curl would: GET /healthz on the plain health port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/tenantctl", "probe", "http://127.0.0.1:8081/healthz"]
ENTRYPOINT ["/usr/local/bin/tenantctl", "serve"]

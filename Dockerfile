# Sluice's container image: the edge (the entry point) and the agent, built from this tree in a
# Rust image, run from a small Debian one as an unprivileged user. See docs/operating.md.
#
#   docker build -t sluice .
#   docker run -p 80:8080 -p 4443:4443/udp -p 4443:4443/tcp -v ./edge.yaml:/etc/sluice/edge.yaml:ro \
#     -v sluice-state:/var/lib/sluice sluice
#
# HTTPS needs certificates, so it is not on by default: set SLUICE_HTTPS_ADDR=0.0.0.0:8443 with
# them (or `acme:`) in edge.yaml. `.git` is not in the build context, so `--version` shows the
# crate version alone.
#
# The build stage's steps are the ones scripts/setup.d and ./scripts/test run natively.

FROM rust:1.95-bookworm AS build
# pingora's build needs cmake (scripts/setup.d/10-cmake).
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake=3.25.* \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin edge --bin agent

FROM debian:bookworm-slim
# CA roots for the edge's outbound calls (sign-in providers, JWKS, http-request) and the
# agent's https:// upstreams.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/sluice --create-home sluice
COPY --from=build /src/target/release/edge /usr/bin/sluice-edge
COPY --from=build /src/target/release/agent /usr/bin/sluice-agent
# In a container the listeners must face the pod's network: each is named here on purpose.
# The metrics listener answers the orchestrator's /healthz and /readyz probes too.
ENV SLUICE_HTTP_ADDR=0.0.0.0:8080 \
    SLUICE_TUNNEL_ADDR=0.0.0.0:4443 \
    SLUICE_METRICS_ADDR=0.0.0.0:9090 \
    SLUICE_STATE_DIR=/var/lib/sluice
USER 10001
WORKDIR /var/lib/sluice
VOLUME ["/var/lib/sluice"]
EXPOSE 8080/tcp 8443/tcp 4443/udp 4443/tcp 9090/tcp
ENTRYPOINT ["/usr/bin/sluice-edge"]
CMD ["--config", "/etc/sluice/edge.yaml"]

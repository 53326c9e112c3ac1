# sms-canary as a container image: built from source, run as a non-root
# user from an image that has no shell and no package manager.
#
#   docker build -t sms-canary .
#   docker run --rm sms-canary check          # the shipped example, offline
#
# Your own config goes in the working directory (config.toml is found before
# the example); the state store is /home/nonroot/.sms-canary, a volume:
#
#   docker run -d --name sms-canary -p 9187:9187 \
#     -v "$PWD/config.toml:/home/nonroot/config.toml:ro" \
#     -v "$PWD/probes:/home/nonroot/probes:ro" \
#     -v sms-canary-state:/home/nonroot/.sms-canary \
#     --env-file sms-canary.env sms-canary
#
# with `listen = "0.0.0.0:9187"` in [canary] so the published port reaches it.
# The test suite checks this file against the code (tests/integration/container.rs).

# Build: the toolchain, and only what the build reads (see .dockerignore).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
RUN cargo build --release --locked --bin sms-canary
# The state directory, so that a volume mounted on it starts out owned by the
# user below (Docker copies the ownership of the image's directory).
RUN mkdir /state

# Run: glibc, CA certificates and a non-root user (65532, "nonroot"); no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/sms-canary /usr/local/bin/sms-canary
WORKDIR /home/nonroot
COPY --from=build --chown=65532:65532 /state ./.sms-canary
COPY config.example.toml ./
COPY probes ./probes
USER 65532:65532
# [canary] listen: the webhooks, the one port to publish. /metrics, /healthz,
# /readyz and the run API are on admin_listen (127.0.0.1:9188 by default,
# inside the container); to scrape it, set admin_listen = "0.0.0.0:9188" and
# publish it to a private network only.
EXPOSE 9187
# Asks /healthz on the config's admin_listen (no curl in the image).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/sms-canary", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/sms-canary"]
CMD ["daemon"]

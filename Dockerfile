# syntax=docker/dockerfile:1
# airlock in a container: a Rust builder, then a small Debian runtime that runs airlock as an
# unprivileged user with its CA, audit logs and store in the volume /var/lib/airlock.
#
#   docker build --build-arg AIRLOCK_GIT_REV="$(git rev-parse --short=12 HEAD)" -t airlock .
#
# The image's config (/etc/airlock/airlock.yaml, from deploy/docker/airlock.yaml) listens on
# 0.0.0.0:8888 with proxy_auth, the password read from the file
# /run/secrets/airlock_proxy_password: without that secret, airlock refuses to start rather than
# serve an open proxy. docker-compose.yml shows the whole set-up.

# ---------------------------------------------------------------------------- build
FROM rust:1.95-bookworm AS build
WORKDIR /src
# build.rs reads the revision from here when the context has no .git (the default: see
# .dockerignore); empty means "git unknown".
ARG AIRLOCK_GIT_REV=""
ENV AIRLOCK_GIT_REV=${AIRLOCK_GIT_REV}
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin airlock \
    && install -m 0755 target/release/airlock /usr/local/bin/airlock

# ---------------------------------------------------------------------------- runtime
FROM debian:bookworm-slim
# ca-certificates: the roots airlock verifies upstream servers with (and the start of the
# bundle the entrypoint publishes for agents). Debian's own versions, unpinned on purpose:
# pinning would break the build at the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 airlock \
    && useradd --system --uid 10001 --gid airlock --home-dir /var/lib/airlock --shell /usr/sbin/nologin airlock \
    && install -d -o airlock -g airlock -m 0700 /var/lib/airlock \
    && install -d -o airlock -g airlock -m 0755 /var/lib/airlock-ca
COPY --from=build /usr/local/bin/airlock /usr/local/bin/airlock
COPY deploy/docker/airlock.yaml /etc/airlock/airlock.yaml
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/airlock-entrypoint

ENV AIRLOCK_HOME=/var/lib/airlock \
    AIRLOCK_CONFIG=/etc/airlock/airlock.yaml \
    AIRLOCK_PUBLISH_CA=/var/lib/airlock-ca
# The CA (key included), the audit logs and the store; and the CA certificate alone, published
# for the agents to mount read-only.
VOLUME ["/var/lib/airlock", "/var/lib/airlock-ca"]
# Numeric, so that Kubernetes can check runAsNonRoot.
USER 10001:10001
EXPOSE 8888
# The admin server listens on 127.0.0.1:8889 inside the container (the image's config keeps the
# default): reachable from here, not from other containers. No curl in the image: bash's
# /dev/tcp asks /healthz and wants a 200.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8889 && printf 'GET /healthz HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/airlock-entrypoint"]
CMD ["start"]

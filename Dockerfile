# syntax=docker/dockerfile:1
# ds2grist image: ds2grist-producer, ds2grist-worker and the ds2grist operator CLI.
# Build:  docker build -t ds2grist:0.1.0 .
# The Helm chart (charts/ds2grist) sets each container's command; the image has no ENTRYPOINT.
# tests/chart/run.sh checks this file: the runtime packages exist in bookworm and match the
# build's -dev packages, and the uid below is the chart's runAsUser.

# ---- build -----------------------------------------------------------------------------------
FROM debian:bookworm-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      librdkafka-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev libmicrohttpd-dev libsodium-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DD2G_BUILD_TESTS=OFF \
      -DCMAKE_INSTALL_PREFIX=/opt/ds2grist \
 && cmake --build /build -j"$(nproc)" \
 && cmake --install /build --strip \
 && test -x /opt/ds2grist/bin/ds2grist-producer \
 && test -x /opt/ds2grist/bin/ds2grist-worker \
 && test -x /opt/ds2grist/bin/ds2grist

# ---- runtime ---------------------------------------------------------------------------------
FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      librdkafka1 libhiredis0.14 libjansson4 libcurl4 libmicrohttpd12 libsodium23 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed non-root user: the chart's podSecurityContext.runAsUser / runAsGroup / fsGroup.
RUN groupadd --system --gid 10001 ds2grist \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin ds2grist
COPY --from=build /opt/ds2grist/bin/ /usr/local/bin/
# The Grist widget's files, served by the onboarding service (onboarding.static_dir's default).
COPY --from=build /opt/ds2grist/share/ds2grist/ /usr/share/ds2grist/
# Every shared library the programs need is installed.
RUN ! ldd /usr/local/bin/ds2grist-producer /usr/local/bin/ds2grist-worker /usr/local/bin/ds2grist \
      | grep 'not found'
LABEL org.opencontainers.image.title="ds2grist" \
      org.opencontainers.image.description="Démarches Simplifiées -> Kafka -> Grist synchronisation"
# Numeric, so that Kubernetes can verify runAsNonRoot.
USER 10001:10001
WORKDIR /tmp

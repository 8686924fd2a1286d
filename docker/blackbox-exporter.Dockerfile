# Debian's prometheus-blackbox-exporter package, installed by apt during the build (scripts/docker-images.sh builds it FROM
# the offline base image mlchaos/base:bookworm; apt reaches the Debian mirror from a build here).
# The configuration is mounted from deploy/docker/ by docker-compose.yml.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-blackbox-exporter \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 9115

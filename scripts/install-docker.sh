#!/usr/bin/env bash
# Installs the Docker engine (Debian's docker.io), docker-compose (1.29) and debootstrap when missing,
# and starts dockerd by hand when no engine answers (no systemd here). Used by `make docker-images`
# and .ci/run. Needs root (or sudo) when something is missing.
set -euo pipefail
# shellcheck source=lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
PACKAGES=()
command -v dockerd >/dev/null || PACKAGES+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || PACKAGES+=(docker-compose)
command -v debootstrap >/dev/null || PACKAGES+=(debootstrap)
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo=sudo
fi
if [ ${#PACKAGES[@]} -gt 0 ]; then
  apt_install "${PACKAGES[@]}"
fi
if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd (log: /var/log/dockerd.log)"
  $sudo sh -c 'dockerd >/var/log/dockerd.log 2>&1 &'
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not answer in 30 s:" >&2; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi
echo "docker engine $(docker version -f '{{.Server.Version}}' 2>/dev/null), $(docker-compose version --short 2>/dev/null || docker compose version --short)"

#!/usr/bin/env bash
# Installs what benchmarks/proxy_capacity.py runs besides mlchaos: nginx (Debian's nginx-light, the fast
# upstream, started by the benchmark as a plain process with its own config) and wrk (the load generator),
# unless both are already there. Used by `make bench`. Needs root (or sudo) when something is missing.
set -euo pipefail
BINARIES=(/usr/sbin/nginx /usr/bin/wrk)
PACKAGES=(nginx-light wrk)

missing=0
for binary in "${BINARIES[@]}"; do
  [ -x "$binary" ] || missing=1
done
if [ "$missing" = 1 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "run as root: apt-get install ${PACKAGES[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${PACKAGES[@]}"
fi
/usr/sbin/nginx -v 2>&1
/usr/bin/wrk --version 2>&1 | head -1 || true

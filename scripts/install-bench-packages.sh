#!/usr/bin/env bash
# Installs what benchmarks/proxy_capacity.py runs besides mlchaos: nginx (Debian's nginx-light, the fast
# upstream, started by the benchmark as a plain process with its own config) and wrk (the load generator),
# unless both are already there. Used by `make bench`. Needs root (or sudo) when something is missing.
set -euo pipefail
# shellcheck source=lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
BINARIES=(/usr/sbin/nginx /usr/bin/wrk)
PACKAGES=(nginx-light wrk)

apt_install_missing "${BINARIES[@]}" -- "${PACKAGES[@]}"
/usr/sbin/nginx -v 2>&1
/usr/bin/wrk --version 2>&1 | head -1 || true

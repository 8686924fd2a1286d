#!/usr/bin/env bash
# Installs the Debian packages mlchaos runs, unless every binary is already there. Two sets:
#   demo  what `make demo` uses: the sandbox's monitoring stack (Prometheus + promtool, Alertmanager,
#         the blackbox exporter) and the Pushgateway its training pipeline pushes to;
#   test  (the default) all of demo, plus node_exporter (results as metrics: `mlchaos run
#         --metrics-textfile` for its textfile collector), VictoriaMetrics (victoria-metrics, vmalert,
#         vmauth: the drills against another monitoring backend, tests/support/victoriametrics.py),
#         Chromium (the test that opens the HTML report in a real headless browser), nginx (an ingress
#         routing by Host with basic auth in front of a model replica: the serving-endpoint test) and
#         pandoc (chaostoolkit-reporting renders an mlchaos journal with it:
#         tests/integration/test_chaostoolkit_journal.py).
# The packages cannot start their services without systemd: mlchaos (and the tests) run the binaries
# themselves. Used by `make demo` (demo), `make test` and .ci/run (test). Needs root (or sudo) when
# something is missing.
set -euo pipefail
# shellcheck source=lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
SET="${1:-test}"
BINARIES=(/usr/bin/prometheus /usr/bin/promtool /usr/bin/prometheus-alertmanager
          /usr/bin/prometheus-blackbox-exporter /usr/bin/prometheus-pushgateway)
PACKAGES=(prometheus prometheus-alertmanager prometheus-blackbox-exporter prometheus-pushgateway)
case "$SET" in
  demo) ;;
  test)
    BINARIES+=(/usr/bin/prometheus-node-exporter /usr/bin/victoria-metrics /usr/bin/vmalert /usr/bin/vmauth
               /usr/bin/chromium /usr/sbin/nginx /usr/bin/pandoc)
    PACKAGES+=(prometheus-node-exporter victoria-metrics chromium nginx-light pandoc) ;;
  *) echo "usage: $0 [demo|test]" >&2; exit 2 ;;
esac

apt_install_missing "${BINARIES[@]}" -- "${PACKAGES[@]}"
for binary in "${BINARIES[@]}"; do
  # the first line that is not launcher noise (Debian's chromium wrapper may complain on stderr);
  # awk reads it all: no SIGPIPE under pipefail
  option=--version
  [ "$(basename "$binary")" = nginx ] && option=-v  # nginx knows no long option
  version=$("$binary" "$option" 2>&1 | awk '!/^\// && !shown { print; shown = 1 }')
  if [ -z "$version" ]; then  # Debian builds VictoriaMetrics without a version string: name the package's
    package=$(dpkg-query -S "$binary" 2>/dev/null | cut -d: -f1)
    version="$(basename "$binary") (Debian $package $(dpkg-query -W -f='${Version}' "$package" 2>/dev/null))"
  fi
  echo "$version"
done

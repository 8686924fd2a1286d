#!/usr/bin/env bash
# Installs the real model servers the integration tests run against, each in a virtual environment of
# its own (their pins would fight ours): MLServer 1.7.1 with its scikit-learn runtime, and KServe 0.21
# with scikit-learn (tests/support/mlserver.py, tests/support/kserve.py). Idempotent: an environment
# whose marker file exists is kept. Used by `make test` and `make test-integration` (and so .ci/run).
# MLCHAOS_MODEL_SERVERS_DIR moves both (default /var/tmp); the tests read MLCHAOS_MLSERVER and
# MLCHAOS_KSERVE_PYTHON when they are not in the default place.
set -euo pipefail
root="${MLCHAOS_MODEL_SERVERS_DIR:-/var/tmp}"
PYTHON="${PYTHON:-python3}"

install_env() {  # name, packages...
  local venv="$root/$1"; shift
  if [ -f "$venv/.installed" ] && [ "$(cat "$venv/.installed")" = "$*" ]; then
    echo "$venv: already installed"
    return
  fi
  if [ -f "$venv/.installed" ]; then  # installed with other pins: install the new ones on top, in place
    "$venv/bin/pip" install --quiet "$@" 2>&1 | { grep -v 'is ignored: it is neither' || true; }
    echo "$*" > "$venv/.installed"
    echo "$venv: updated to $*"
    return
  fi
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  # the machine's pip configuration may list local mirrors that do not exist: pip warns once per package
  "$venv/bin/pip" install --quiet --upgrade pip 2>&1 | { grep -v 'is ignored: it is neither' || true; }
  "$venv/bin/pip" install --quiet "$@" 2>&1 | { grep -v 'is ignored: it is neither' || true; }
  echo "$*" > "$venv/.installed"
  echo "$venv: installed $*"
}

# uvloop 0.22 breaks MLServer 1.7.1's inference workers (parallel_workers > 0: "There is no current event
# loop", SeldonIO/MLServer#2286); the process-driver tests run MLServer with a worker
install_env mlserver-venv "mlserver==1.7.1" "mlserver-sklearn==1.7.1" "uvloop<0.22" &
mlserver=$!
install_env kserve-venv "kserve==0.21.0" "scikit-learn" &
kserve=$!
rc=0
wait "$mlserver" || rc=$?
wait "$kserve" || rc=$?
exit "$rc"

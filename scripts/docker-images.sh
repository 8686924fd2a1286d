#!/usr/bin/env bash
# Builds the images of the reference stack (docker-compose.yml) offline, without any registry:
#   mlchaos/base:bookworm      debootstrap (minbase + python3, python3-venv, ca-certificates, iproute2)
#                              + `docker import`; built only when missing (rootfs tarball cached in
#                              $MLCHAOS_CACHE_DIR, default /var/cache/mlchaos)
#   mlchaos/model-server       }
#   mlchaos/fault-proxy        } FROM the base image, each tagged :<hash> and :latest, where <hash>
#   mlchaos/prometheus         } covers the Dockerfile, the project files it copies and the base
#   mlchaos/alertmanager       } image id: an image is rebuilt only when one of its inputs changed
#   mlchaos/blackbox-exporter  }
# Starts dockerd by hand when no engine answers (no systemd here). Idempotent; needs root for
# debootstrap and dockerd. Usage: scripts/docker-images.sh [--force] [IMAGE...]
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=${MLCHAOS_BASE_IMAGE:-mlchaos/base:bookworm}
CACHE_DIR=${MLCHAOS_CACHE_DIR:-/var/cache/mlchaos}
SUITE=bookworm
MIRROR=${MLCHAOS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# image name -> files (besides its Dockerfile) that it copies from the project
declare -A INPUTS=(
  [model-server]="mlchaos/__init__.py mlchaos/sandbox"
  [fault-proxy]="mlchaos/__init__.py mlchaos/proxy"
  [prometheus]=""
  [alertmanager]=""
  [blackbox-exporter]=""
)
ORDER=(model-server fault-proxy prometheus alertmanager blackbox-exporter)
force=0
wanted=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) [ -n "${INPUTS[$arg]+x}" ] || { echo "unknown image: $arg (known: ${ORDER[*]})" >&2; exit 2; }
       wanted+=("$arg") ;;
  esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=("${ORDER[@]}")

log() { printf '[docker-images %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

ensure_engine() {
  if docker info >/dev/null 2>&1; then return; fi
  command -v dockerd >/dev/null || { echo "no Docker engine: apt-get install docker.io" >&2; exit 1; }
  log "starting dockerd (log: /var/log/dockerd.log)"
  dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && { log "dockerd is up"; return; }
    sleep 0.5
  done
  echo "dockerd did not answer within 30 s; see /var/log/dockerd.log:" >&2
  tail -20 /var/log/dockerd.log >&2
  exit 1
}

ensure_base() {
  if [ "$force" = 0 ] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "$BASE_IMAGE: present"
    return
  fi
  local tarball="$CACHE_DIR/rootfs-$SUITE-minbase.tar" start=$SECONDS
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { echo "debootstrap missing: apt-get install debootstrap" >&2; exit 1; }
    mkdir -p "$CACHE_DIR"
    local rootfs
    rootfs=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
    log "debootstrap $SUITE into $rootfs (about 40 s)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,iproute2 \
      "$SUITE" "$rootfs" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE_DIR/debootstrap.log" >&2; rm -rf "$rootfs"; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  log "docker import $tarball -> $BASE_IMAGE"
  docker import "$tarball" "$BASE_IMAGE" >/dev/null
  log "$BASE_IMAGE: built in $((SECONDS - start)) s"
}

# hash of the Dockerfile, the files the image copies (names and contents) and the base image id
input_hash() {
  local name=$1 files
  # shellcheck disable=SC2086
  files=$(find docker/$name.Dockerfile ${INPUTS[$name]} -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort)
  {
    docker image inspect -f '{{.Id}}' "$BASE_IMAGE"
    for f in $files; do printf '%s\n' "$f"; sha256sum <"$f"; done
  } | sha256sum | cut -c1-12
}

# The model server's Python wheels, fetched by the host's pip (which reaches the package index;
# a build container may not trust the host's TLS interception CA): the build then runs offline.
MODEL_REQUIREMENTS=("scikit-learn>=1.3,<2" "prometheus-client>=0.20" "cryptography>=42")
download_wheels() {
  local pip=(python3 -m pip)
  [ -x .venv/bin/pip ] && pip=(.venv/bin/pip)
  log "downloading wheels into docker/wheels/"
  "${pip[@]}" download --quiet --disable-pip-version-check --only-binary=:all: \
    --dest docker/wheels "${MODEL_REQUIREMENTS[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
}

build_image() {
  local name=$1 image="mlchaos/$1" tag start extra=()
  tag=$(input_hash "$name")
  if [ "$force" = 0 ] && docker image inspect "$image:$tag" >/dev/null 2>&1; then
    docker tag "$image:$tag" "$image:latest"
    log "$image:$tag: up to date"
    return
  fi
  start=$SECONDS
  if [ "$name" = model-server ]; then
    download_wheels
    extra=(--build-arg PIP_NO_INDEX=1)
  fi
  log "building $image:$tag"
  DOCKER_BUILDKIT=0 docker build --quiet --build-arg "BASE=$BASE_IMAGE" "${extra[@]}" \
    -f "docker/$name.Dockerfile" -t "$image:$tag" -t "$image:latest" \
    --label "org.mlchaos.inputs-hash=$tag" . >/dev/null \
    2> >(grep -v -e "^DEPRECATED: The legacy builder" -e "BuildKit is currently disabled" \
               -e "environment-variable.$" -e "^$" >&2)
  log "$image:$tag: built in $((SECONDS - start)) s"
}

total=$SECONDS
ensure_engine
ensure_base
for name in "${wanted[@]}"; do
  build_image "$name"
done
log "done in $((SECONDS - total)) s: $(for n in "${wanted[@]}"; do printf 'mlchaos/%s ' "$n"; done)"

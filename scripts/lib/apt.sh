# Shared by the install scripts (sourced, not run): install Debian packages with apt-get, through sudo
# when not root. The caller sets `set -euo pipefail`.

# apt_install PACKAGE...: apt-get update, then install the packages (no recommends, no questions);
# as root directly, else through sudo (an error naming the command to run as root when there is none).
apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "run as root: apt-get install $*" >&2; exit 1; }
    sudo=sudo
  fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "$@"
}

# apt_install_missing BINARY... -- PACKAGE...: install the packages unless every binary is already
# there (an executable file); nothing happens (not even apt-get update) when they all are.
apt_install_missing() {
  local missing=0
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    [ -x "$1" ] || missing=1
    shift
  done
  [ $# -gt 0 ] || { echo "apt_install_missing: no -- between the binaries and the packages" >&2; exit 2; }
  shift
  if [ "$missing" = 1 ]; then
    apt_install "$@"
  fi
}

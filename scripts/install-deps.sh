#!/bin/sh
# Install the Debian packages qforge builds and tests with (python3: a few
# CLI tests read JSON with its standard library).
#   scripts/install-deps.sh         install what is missing (root, apt-get)
#   scripts/install-deps.sh --list  print the package names
set -e
PKGS="build-essential pkg-config libzstd-dev libcjson-dev libssl-dev libarchive-dev libcmocka-dev python3"
if [ "$1" = "--list" ]; then
    echo $PKGS
    exit 0
fi
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "qforge: missing packages; run: apt-get install$missing" >&2
    exit 1
fi
echo "qforge: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends $missing >&2

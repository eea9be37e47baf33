#!/bin/sh
# Install every Debian package that building, testing and benchmarking sluice needs.
# Idempotent: when everything is already installed it prints nothing and exits 0.
# This file is the single source of truth for dependencies; CI runs it on a clean machine.
set -eu

BUILD_PKGS="build-essential cmake pkg-config libyaml-dev libsqlite3-dev libpq-dev
librdkafka-dev libnats-dev libmicrohttpd-dev libcurl4-openssl-dev libluajit-5.1-dev
libzstd-dev zlib1g-dev tzdata"
TEST_PKGS="python3 python3-prometheus-client sqlite3 postgresql nats-server jq clang clang-format llvm libclang-rt-14-dev
procps psmisc"
BENCH_PKGS="miller time wrk"

want="$BUILD_PKGS $TEST_PKGS"
case "${1:-}" in
--bench) want="$want $BENCH_PKGS" ;;
"") ;;
*) echo "usage: scripts/deps.sh [--bench]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "deps.sh: missing packages:$missing; run as root or install them" >&2
        exit 1
    fi
else
    SUDO=""
fi
echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null
echo "deps.sh: done"

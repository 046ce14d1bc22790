#!/usr/bin/env bash
# make bench: eventrt's speed side by side with the legacy course runtime and with minimal Go
# programs, in one run on this machine against one private redis-server on a free loopback
# port. Everything it runs is in this repository (the legacy runtime's stand-in is
# bench/peers/legacy_runtime.py); docs/performance.md describes the method. Installs what it
# needs from Debian packages when missing (redis-server; python3 and python3-redis for the
# Python rows and the legacy peer), builds bin/eventrt and the driver (cmd/eventrt-bench), then
# prints a markdown table and writes it to bench/results.md. Extra arguments go to the driver
# (eventrt-bench -h lists them); BENCH_ARGS does the same from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# The legacy runtime runs on Debian's interpreter with Debian's redis client; without them
# its row is skipped and says what is missing, it does not fail the run.
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import redis' 2>/dev/null || need+=(python3 python3-redis)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # policy-rc.d keeps the package's redis service from starting on the machine.
  if [ -z "$sudo" ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  if ! { $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
    echo "bench: could not install ${need[*]}; rows that need them will say so"
  fi
fi
command -v redis-server >/dev/null 2>&1 || { echo "bench: redis-server is required"; exit 1; }

echo "bench: building bin/eventrt and bin/eventrt-bench"
make -s build
CGO_ENABLED=0 go build -trimpath -o bin/eventrt-bench ./cmd/eventrt-bench
mkdir -p bench
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
./bin/eventrt-bench -repo . -out bench/results.md ${BENCH_ARGS:-} "$@"
# The pattern-function rows (10,000 keys absorbed, idle RSS, RSS with 100,000 keys, 1/2/4
# replicas on a 3-master cluster and their hand-overs), appended to the same results;
# PATTERN_BENCH=0 leaves them out.
if [ "${PATTERN_BENCH:-1}" != 0 ]; then
  { echo; echo "## Pattern functions"; echo; ./bin/eventrt-bench patterns -repo .; } | tee -a bench/results.md
fi

#!/usr/bin/env bash
# The test command: installs what the tests need (redis-server, prometheus and promtool,
# python3) from Debian packages when missing, then checks formatting, vets, runs staticcheck,
# and runs every test with the race detector against real redis-server processes that the
# tests start on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
# Debian's prometheus package brings the server (the real-Prometheus test in deploy/) and promtool.
{ command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; } || need+=(prometheus)
[ -x /usr/bin/python3 ] || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # policy-rc.d keeps the packages' services (redis, prometheus) from starting on the machine.
  if [ -z "$sudo" ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi
# Commit messages follow CONTRIBUTING.md from the first commit that had the check on.
scripts/commitmsg.sh --since feabae5
go vet ./...
# staticcheck at a pinned version, fetched and built through the module proxy like any module
# (the first run takes a few minutes; later ones use the build cache). Bump it with a commit
# that fixes what the new version reports.
STATICCHECK_VERSION=v0.8.2
go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ./...
go test -race -count=1 -timeout 20m "$@" ./...

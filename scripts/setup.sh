#!/usr/bin/env bash
# setup.sh - installs exactly what ds2grist's build, tests and local stack need on
# Debian 12, and nothing that is already there. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: compiler, CMake, pkg-config and the libraries' -dev packages.
# Tests and the local stack: redis-server, cmocka, Node.js and npm (emulators), kcat (a handy Kafka client).
# The Helm chart's render test: Go with Helm's own template libraries (Sprig), YAML and JSON Schema (no Helm
# binary can be installed here; see docs/helm.md).
# The onboarding widget's browser test: Debian's chromium (playwright-core drives it; no browser download)
# and a font for its text.
PACKAGES=(build-essential cmake pkg-config git
          librdkafka-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev libmicrohttpd-dev
          libsodium-dev libcmocka-dev redis-server kcat curl ca-certificates
          golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev golang-gopkg-yaml.v2-dev
          golang-github-xeipuuv-gojsonschema-dev
          chromium fonts-dejavu-core)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js 18+ (the machine may already have one outside Debian's packages).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: Debian packages already installed"
fi

# A system redis-server may have been started by the package: ds2grist's tests and demo
# start their own on free ports, so it is left alone.

# The emulators' and the browser test's npm dependencies, pinned by their package-lock.json.
for dir in tests/ds-emulator tests/grist-emulator tests/browser; do
  if [ -f "$dir/package-lock.json" ]; then
    stamp="$dir/node_modules/.d2g-lock"
    if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
      echo "setup: npm ci in $dir"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
      cp "$dir/package-lock.json" "$stamp"
    fi
  fi
done
echo "setup: done"

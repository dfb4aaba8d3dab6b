#!/usr/bin/env bash
# config_examples.sh - every configuration example in the docs loads with the real loader.
#
# Each ```json block of docs/*.md that holds a "procedures" key is checked with
# `ds2grist config check`. Secrets named in it are provided: every {"env": NAME} as an
# environment variable, every {"file": PATH} as a file (paths under /run/secrets are moved
# into a temporary directory). Usage: config_examples.sh DS2GRIST_BIN DOCS_DIR
set -euo pipefail
bin=$1 docs=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
for md in "$docs"/*.md; do
  # Extract the json blocks, one file each.
  awk -v out="$tmp/$(basename "$md" .md)" '
    /^```json/ { n++; f = out "-" n ".json"; on = 1; next }
    /^```/     { on = 0; next }
    on         { print > f }' "$md"
done
for ex in "$tmp"/*.json; do
  [ -e "$ex" ] || continue
  grep -q '"procedures"' "$ex" || continue
  sed -i "s#/run/secrets/#$tmp/secrets/#g" "$ex"
  envs=()
  for name in $(grep -o '"env": *"[A-Za-z_][A-Za-z0-9_]*"' "$ex" | sed 's/.*"\([A-Za-z0-9_]*\)"$/\1/' | sort -u); do
    envs+=("$name=example-secret")
  done
  for path in $(grep -o '"file": *"[^"]*"' "$ex" | sed 's/.*"\([^"]*\)"$/\1/' | sort -u); do
    mkdir -p "$(dirname "$path")"; echo example-secret >"$path"
  done
  if out=$(env "${envs[@]}" "$bin" --config "$ex" config check 2>&1); then
    passed=$((passed + 1)); echo "ok $(basename "$ex")"
  else
    failed=$((failed + 1)); echo "not ok $(basename "$ex"): $out"
  fi
  if grep -q example-secret <<<"$out"; then
    failed=$((failed + 1)); echo "not ok $(basename "$ex"): a secret appears in the output"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]

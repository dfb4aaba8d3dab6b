#!/usr/bin/env bash
# demo.sh - ds2grist on one machine: set-up, build, then the whole stack (a throwaway Redis,
# a local Kafka broker, the DS and Grist emulators) brought up and shown to answer.
#
#   ./scripts/demo.sh          bring everything up, show it answers, stop
#   ./scripts/demo.sh --keep   same, then keep the stack running until Ctrl-C
#
# Everything it runs lives in ./run/ (logs, configuration, addresses).
set -euo pipefail
cd "$(dirname "$0")/.."
D2G_ROOT=$(pwd)
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

./scripts/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
D2G_BIN="$D2G_ROOT/build/release/tests"

STACK_DIR="$D2G_ROOT/run"
rm -rf "$STACK_DIR"; mkdir -p "$STACK_DIR"
# shellcheck source=lib/stack.sh
. "$D2G_ROOT/scripts/lib/stack.sh"
trap stack_stop EXIT

DS_TOKEN=demo-ds-token
GRIST_KEY=demo-grist-key
cat >"$STACK_DIR/ds-emulator.json" <<JSON
{"seed": 2026,
 "procedures": [{"number": 1001, "dossiers": 300}, {"number": 1002, "dossiers": 120},
                {"number": 1003, "dossiers": 40}],
 "tokens": [{"name": "demo", "secret": "$DS_TOKEN", "procedures": "*"}]}
JSON
cat >"$STACK_DIR/grist-emulator.json" <<JSON
{"docs": [{"id": "demoDocA", "keys": ["$GRIST_KEY"]}, {"id": "demoDocB", "keys": ["$GRIST_KEY"]}],
 "maxParallelPerDoc": 10}
JSON

echo "== starting the stack in $STACK_DIR"
stack_start_redis;  echo "redis        127.0.0.1:$REDIS_PORT  $(redis-cli -p "$REDIS_PORT" ping)"
stack_start_kafka 6; echo "kafka (mock) $KAFKA_BOOTSTRAP"
stack_start_ds "$STACK_DIR/ds-emulator.json"; echo "DS emulator  http://127.0.0.1:$DS_PORT/api/v2/graphql"
stack_start_grist "$STACK_DIR/grist-emulator.json"; echo "Grist emul.  http://127.0.0.1:$GRIST_PORT"

echo "== DS answers: first page of procedure 1001"
curl -sS -H "Authorization: Bearer $DS_TOKEN" -H 'Content-Type: application/json' \
  --data '{"query":"{ demarche(number: 1001) { title dossiers(first: 3) { pageInfo { hasNextPage } nodes { number state dateDerniereModification } } } }"}' \
  "http://127.0.0.1:$DS_PORT/api/v2/graphql"; echo
echo "== Grist answers: tables of demoDocA"
curl -sS -H "Authorization: Bearer $GRIST_KEY" "http://127.0.0.1:$GRIST_PORT/api/docs/demoDocA/tables"; echo
echo "== Kafka answers: topic metadata"
if command -v kcat >/dev/null; then kcat -b "$KAFKA_BOOTSTRAP" -L 2>/dev/null | head -5; fi

# The configuration ds2grist would run with against this stack.
cat >"$STACK_DIR/ds2grist.json" <<JSON
{"kafka": {"properties": {"bootstrap.servers": "$KAFKA_BOOTSTRAP"}},
 "redis": {"url": "redis://127.0.0.1:$REDIS_PORT", "namespace": "demo"},
 "ds": {"endpoint": "http://127.0.0.1:$DS_PORT/api/v2/graphql",
        "tokens": {"demo": {"secret": {"env": "DEMO_DS_TOKEN"}}}},
 "grist": {"servers": {"local": {"url": "http://127.0.0.1:$GRIST_PORT", "api_key": {"env": "DEMO_GRIST_KEY"}}}},
 "procedures": [
   {"number": 1001, "ds_token": "demo", "grist_server": "local", "document": "demoDocA", "table_prefix": "Subventions"},
   {"number": 1002, "ds_token": "demo", "grist_server": "local", "document": "demoDocA", "table_prefix": "Bourses"},
   {"number": 1003, "ds_token": "demo", "grist_server": "local", "document": "demoDocB", "table_prefix": "Agrements"}]}
JSON
echo "== configuration written to $STACK_DIR/ds2grist.json"

if [ "$KEEP" = 1 ]; then
  echo "== stack running; Ctrl-C to stop"
  while sleep 3600; do :; done
fi
echo "== demo done; logs in $STACK_DIR"

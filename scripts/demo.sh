#!/usr/bin/env bash
# demo.sh - ds2grist on one machine: set-up, build, the stack (a throwaway Redis, a local
# Kafka broker, the DS and Grist emulators), then the real sync: three procedures into two
# Grist documents by one producer and three workers, with a progress display, a summary
# (dossiers synced, DS and Grist requests, highest in-flight per document, 429s) and the
# Grist tables dumped as CSV in ./run/grist/.
#
#   ./scripts/demo.sh          run the sync to the end, summarise, stop
#   ./scripts/demo.sh --keep   same, then keep everything running (change dossiers through
#                              the DS emulator's admin API and watch them arrive) until Ctrl-C
#
# Everything it runs lives in ./run/ (logs, configuration, addresses, dumps).
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
 "procedures": [{"number": 1001, "dossiers": 3000}, {"number": 1002, "dossiers": 1200},
                {"number": 1003, "dossiers": 400}],
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

# The configuration ds2grist runs with against this stack. Secrets come from the environment.
cat >"$STACK_DIR/ds2grist.json" <<JSON
{"kafka": {"properties": {"bootstrap.servers": "$KAFKA_BOOTSTRAP", "session.timeout.ms": "6000"}},
 "redis": {"url": "redis://127.0.0.1:$REDIS_PORT", "namespace": "demo"},
 "ds": {"endpoint": "http://127.0.0.1:$DS_PORT/api/v2/graphql",
        "tokens": {"demo": {"secret": {"env": "DEMO_DS_TOKEN"}}}},
 "grist": {"servers": {"local": {"url": "http://127.0.0.1:$GRIST_PORT", "api_key": {"env": "DEMO_GRIST_KEY"}}}},
 "defaults": {"poll_interval_s": 5},
 "procedures": [
   {"number": 1001, "ds_token": "demo", "grist_server": "local", "document": "demoDocA", "table_prefix": "Subventions"},
   {"number": 1002, "ds_token": "demo", "grist_server": "local", "document": "demoDocA", "table_prefix": "Bourses"},
   {"number": 1003, "ds_token": "demo", "grist_server": "local", "document": "demoDocB", "table_prefix": "Agrements"}]}
JSON
export DEMO_DS_TOKEN=$DS_TOKEN DEMO_GRIST_KEY=$GRIST_KEY
BIN="$D2G_ROOT/build/release"

echo "== starting 1 producer and 3 workers (logs in $STACK_DIR/*.log)"
"$BIN/producer/ds2grist-producer" --config "$STACK_DIR/ds2grist.json" >"$STACK_DIR/producer.log" 2>&1 &
STACK_PIDS+=($!)
for i in 1 2 3; do
  DS2GRIST_HTTP_PORT=$([ $i = 1 ] && _stack_free_port || echo 0) \
    "$BIN/worker/ds2grist-worker" --config "$STACK_DIR/ds2grist.json" >"$STACK_DIR/worker-$i.log" 2>&1 &
  STACK_PIDS+=($!)
done

# JSON from the emulators' admin APIs, read with Node (already needed by the emulators).
jsget() { curl -sS "$1" | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const j=JSON.parse(s);console.log(eval(process.argv[1]))})" "$2"; }
ds_count() { jsget "http://127.0.0.1:$DS_PORT/admin/procedures/$1/dossiers" 'j.dossiers.length'; }
grist_count() { jsget "http://127.0.0.1:$GRIST_PORT/admin/stats" "(j.docs['$1'].tables||{})['$2']||0"; }

TARGETS="1001:demoDocA:Subventions 1002:demoDocA:Bourses 1003:demoDocB:Agrements"
start=$(date +%s)
while :; do
  line="" done=1
  for t in $TARGETS; do
    IFS=: read -r proc doc table <<<"$t"
    want=$(ds_count "$proc"); have=$(grist_count "$doc" "$table")
    line+="$table $have/$want   "
    [ "$have" = "$want" ] || done=0
  done
  printf '\r== syncing: %s' "$line"
  [ "$done" = 1 ] && break
  if [ $(( $(date +%s) - start )) -gt 300 ]; then echo; echo "demo: not synced after 300 s; see $STACK_DIR/*.log" >&2; exit 1; fi
  sleep 1
done
echo
elapsed=$(( $(date +%s) - start ))

echo "== summary"
jsget "http://127.0.0.1:$DS_PORT/admin/counters" '`DS requests: ${j.total} (${Object.entries(j.byOperation).map(([k,v])=>k+" "+v).join(", ")}), dossiers served: ${j.dossiersServed}`'
jsget "http://127.0.0.1:$GRIST_PORT/admin/stats" '`Grist requests: ${j.requests.total}, 429s: ${j.sent429}\n` + Object.entries(j.docs).map(([d,v])=>`  ${d}: ${v.requests} requests, highest in flight ${v.maxInFlight}, rows ${JSON.stringify(v.tables)}`).join("\n")'
echo "Dossiers synced in ${elapsed} s."
echo "== what an operator sees: ds2grist status"
sleep 2 # the workers commit their offsets every second: then "Messages waiting" reads 0
"$BIN/common/ds2grist" --config "$STACK_DIR/ds2grist.json" status || true

mkdir -p "$STACK_DIR/grist"
for doc in demoDocA demoDocB; do
  for table in $(jsget "http://127.0.0.1:$GRIST_PORT/admin/stats" "Object.keys(j.docs['$doc'].tables).join(' ')"); do
    curl -sS "http://127.0.0.1:$GRIST_PORT/admin/docs/$doc/tables/$table/dump?format=csv" >"$STACK_DIR/grist/$doc-$table.csv"
  done
done
echo "== tables dumped as CSV in $STACK_DIR/grist/:"
ls -1 "$STACK_DIR/grist" | sed 's/^/  /'
echo "== first rows of Subventions:"
head -3 "$STACK_DIR/grist/demoDocA-Subventions.csv" | cut -c1-200

if [ "$KEEP" = 1 ]; then
  echo "== stack running; Ctrl-C to stop"
  while sleep 3600; do :; done
fi
echo "== demo done; logs, configuration and dumps in $STACK_DIR"

#!/usr/bin/env bash
# bench.sh - how fast the workers fill Grist documents (tests/bench/bench_worker.c), on a
# Release build, against the Grist emulator's cost model (grist-core 1.7.17: 8 ms + 0.02 ms
# per row + 0.0044 ms per cell, updates about half, one write applied at a time per
# document, 10 requests in flight; tests/grist-emulator/README.md).
#
# For a wide data set (the DS emulator's full form: a 61-column Dossiers table + repetition
# rows) and a narrow one (10 champs), 1, 2 and 4 workers, into 1 document and into 4: rows/s,
# the cost model's maximum for the same rows, their ratio, requests, mean body per table,
# 429s, peak RSS, CPU per dossier. Then 1,000 documents x 20 dossiers: the schema creation's
# cost per document. Prints figures; asserts nothing.
#
#   scripts/bench.sh [--dossiers N] [--shapes "wide narrow"] [--workers "1 2 4"]
#                    [--documents "1 4"] [--no-many] [-- extra bench_worker arguments]
#
#   scripts/bench.sh producer [ARGS]     the producer at scale instead (tests/bench/bench_producer.c):
#                                        10,000 procedures over 20 tokens, 2 replicas, one killed;
#                                        ARGS e.g. --procedures 2000 --interval 60
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == producer ]]; then
  shift
  ./scripts/setup.sh >/dev/null
  cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build/release -j"$(nproc)" --target bench_producer ds2grist-producer ds2grist-kafka-mock >/dev/null
  exec build/release/tests/bench_producer "$@"
fi

dossiers=8000 shapes="wide narrow" workers="1 2 4" documents="1 4" many=1 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dossiers) dossiers=$2; shift 2 ;;
    --shapes) shapes=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --documents) documents=$2; shift 2 ;;
    --no-many) many=0; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "usage: $0 [--dossiers N] [--shapes \"wide narrow\"] [--workers \"1 2 4\"] [--documents \"1 4\"] [--no-many] [-- args]" >&2; exit 2 ;;
  esac
done

./scripts/setup.sh >/dev/null
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)" --target bench_worker ds2grist-producer ds2grist-worker \
  ds2grist-kafka-mock >/dev/null

bench=build/release/tests/bench_worker
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for shape in $shapes; do
  for d in $documents; do
    for w in $workers; do
      echo "== $shape, $d document(s), $w worker(s)"
      "$bench" --dossiers "$dossiers" --documents "$d" --workers "$w" --shape "$shape" "${extra[@]}" \
        | tee -a "$results" | grep -v '^RESULT'
    done
  done
done
if [ "$many" = 1 ]; then
  echo "== 1,000 documents x 20 dossiers (wide), 2 workers"
  "$bench" --many --workers 2 "${extra[@]}" | tee -a "$results" | grep -v '^RESULT'
fi

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
echo
echo "| data set | documents | workers | rows | start-up | seconds | rows/s | model max rows/s | ratio | requests | mean Dossiers body | mean child body | 429s | peak RSS | CPU per dossier |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
{ grep '^RESULT' "$results" || true; } | { grep 'many=0' || true; } | while read -r line; do
  echo "| $(field shape "$line") | $(field documents "$line") | $(field workers "$line") | $(field rows "$line") |" \
       "$(field startup_s "$line") s | $(field seconds "$line") s |" \
       "$(field rows_s "$line") | $(field max_rows_s "$line") | $(field ratio "$line") | $(field requests "$line") |" \
       "$(field dossiers_body_kB "$line") kB | $(field child_body_kB "$line") kB | $(field r429 "$line") |" \
       "$(field rss_MB "$line") MB | $(field cpu_ms_per_dossier "$line") ms |"
done
{ grep '^RESULT' "$results" || true; } | { grep 'many=1' || true; } | while read -r line; do
  echo
  echo "1,000 documents x 20 dossiers, $(field workers "$line") workers: $(field rows_s "$line") rows/s," \
       "model max $(field max_rows_s "$line") (ratio $(field ratio "$line")); schema creation per document:" \
       "$(field schema_requests_per_doc "$line") writes and $(field schema_reads_per_doc "$line") reads," \
       "$(field schema_ms_per_doc "$line") ms of Grist time; peak RSS $(field rss_MB "$line") MB," \
       "CPU $(field cpu_ms_per_dossier "$line") ms per dossier, $(field requests "$line") requests"
done

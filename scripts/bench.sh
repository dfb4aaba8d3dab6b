#!/usr/bin/env bash
# bench.sh - how fast the workers fill Grist documents (tests/bench/bench_worker.c), on
# a Release build, against the Grist emulator's cost model (Grist's measured 12 ms per
# write + 0.2 ms per row, one write at a time per document, 10 requests in flight).
# Prints figures; asserts nothing. Extra arguments go to every run (e.g. --workers 4).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)" --target bench_worker ds2grist-producer ds2grist-worker \
  ds2grist-kafka-mock >/dev/null

bench=build/release/tests/bench_worker
echo "== one document: is it written as fast as Grist allows?"
"$bench" --dossiers 20000 --documents 1 --workers 2 "$@"
echo "== four documents, shared by the same workers"
"$bench" --dossiers 20000 --documents 4 --workers 2 "$@"

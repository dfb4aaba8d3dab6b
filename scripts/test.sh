#!/usr/bin/env bash
# test.sh - the whole test suite on a fresh Debian 12 machine: set-up, a Release build
# (warnings as errors), a build under AddressSanitizer + UndefinedBehaviorSanitizer, and
# every test under CTest in that build. Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

jobs=$(nproc)
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$jobs"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DD2G_SANITIZE=ON >/dev/null
cmake --build build/asan -j"$jobs"

cd build/asan
ctest --output-on-failure --timeout 900 "$@"

#!/usr/bin/env bash
# tests/chart/run.sh - the Helm chart's test, without Helm (none can be installed here).
#
# Renders charts/ds2grist with render/ (Go's text/template + Sprig + Helm's own functions, from
# Debian's Go packages, offline), then checks with check/: the chart's files and the Dockerfile
# (schema, README, packages, uid), the manifests of the default values, of values-all.yaml
# (everything on), of values-dev-secret.yaml, and that each bad/*.yaml is refused with its
# "# expect:" message. With --config-loader BIN (CTest passes chart_config_load), every rendered
# config.json is also loaded by ds2grist's real configuration loader.
#
# Usage: tests/chart/run.sh [--config-loader BIN] [--write-readme] [--keep DIR]
# Needs (scripts/setup.sh installs them): golang-go golang-github-masterminds-sprig-dev
#   golang-gopkg-yaml.v3-dev golang-gopkg-yaml.v2-dev golang-github-xeipuuv-gojsonschema-dev
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
chart="$repo/charts/ds2grist"
packages="golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev golang-gopkg-yaml.v2-dev golang-github-xeipuuv-gojsonschema-dev"

loader="" write_readme=0 keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config-loader) loader="$2"; shift 2 ;;
    --write-readme) write_readme=1; shift ;;
    --keep) keep="$2"; shift 2 ;;
    *) echo "usage: $0 [--config-loader BIN] [--write-readme] [--keep DIR]" >&2; exit 2 ;;
  esac
done

if ! command -v go >/dev/null 2>&1; then
  echo "chart test: 'go' is missing. Install Debian's packages: $packages (scripts/setup.sh does)." >&2
  exit 1
fi
export GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS=
for dir in github.com/Masterminds/sprig gopkg.in/yaml.v3 gopkg.in/yaml.v2 github.com/xeipuuv/gojsonschema; do
  if [ ! -d "$GOPATH/src/$dir" ]; then
    echo "chart test: Go package $dir is missing from $GOPATH. Install Debian's packages: $packages." >&2
    exit 1
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "${GOCACHE:-}" ]; then
  GOCACHE=$(go env GOCACHE 2>/dev/null || true)
  if [ -z "$GOCACHE" ] || ! mkdir -p "$GOCACHE" 2>/dev/null || [ ! -w "$GOCACHE" ]; then GOCACHE="$work/gocache"; fi
  export GOCACHE
fi
(cd "$here" && go build -o "$work/render" ./render && go build -o "$work/check" ./check)

log="$work/log"
: >"$log"
say() { echo "$*" | tee -a "$log"; }
step() { echo "# $*" | tee -a "$log"; }
# Runs the checker; its lines go to the log (the step's own summary line is dropped from the total).
run_check() { "$work/check" "$@" | tee -a "$log" || true; }

uid=$(sed -nE 's/.*useradd .*--uid ([0-9]+).*/\1/p' "$repo/Dockerfile" | head -1)
app=$(sed -nE 's/^appVersion: *"?([^"]*)"?$/\1/p' "$chart/Chart.yaml")

step "static: schema, README, Dockerfile"
static_args=(static -chart "$chart" -dockerfile "$repo/Dockerfile")
[ "$write_readme" = 1 ] && static_args+=(-write-readme)
run_check "${static_args[@]}"

loader_args=()
if [ -n "$loader" ]; then loader_args=(-config-loader "$loader"); else step "skipped: the real configuration loader (no --config-loader)"; fi

render() { # render NAME [render args...]
  local name=$1; shift
  if "$work/render" -chart "$chart" -o "$work/$name.yaml" -notes "$work/$name.notes" "$@" 2>"$work/$name.err"; then
    say "ok - $name: the chart renders"
  else
    say "not ok - $name: the chart renders: $(cat "$work/$name.err")"
    return 1
  fi
  if [ -s "$work/$name.notes" ]; then say "ok - $name: NOTES.txt renders"; else say "not ok - $name: NOTES.txt renders"; fi
}

step "default values"
if render default; then
  run_check manifests -manifests "$work/default.yaml" -namespace default -uid "$uid" \
    -image "ds2grist:$app" -producer-replicas 2 -worker-min 3 \
    -expect ServiceAccount,Service,HorizontalPodAutoscaler -absent ScaledObject,ServiceMonitor,Secret \
    "${loader_args[@]}"
fi

step "values-all.yaml: everything on"
if render all -f "$here/values-all.yaml" -name prod -namespace sync; then
  run_check manifests -manifests "$work/all.yaml" -namespace sync -uid "$uid" \
    -image "registry.example.org/ds2grist:1.2.3" -producer-replicas 3 -worker-min 2 \
    -expect ServiceAccount,Service,ScaledObject,ServiceMonitor -absent HorizontalPodAutoscaler,Secret \
    "${loader_args[@]}"
  for want in '"file": "/run/secrets/ds2grist/ds/agriculture"' '"env": "D2G_SECRET_DS_TOKEN_INTERIEUR_DGCL"' \
              '"file": "/vault/secrets/ds-token"' 'grafana_dashboard: "1"' 'name: d2g-dashboard'; do
    if grep -qF "$want" "$work/all.yaml"; then say "ok - all: renders $want"; else say "not ok - all: renders $want"; fi
  done
fi

step "values-dev-secret.yaml: the development Secret"
if render dev -f "$here/values-dev-secret.yaml"; then
  run_check manifests -manifests "$work/dev.yaml" -namespace default -uid "$uid" -dev-secret \
    -expect Secret "${loader_args[@]}"
  if grep -q 'WARNING: secrets.create' "$work/dev.notes"; then say "ok - dev: NOTES.txt warns about secrets.create"; else say "not ok - dev: NOTES.txt warns about secrets.create"; fi
fi

step "bad values are refused"
for bad in "$here"/bad/*.yaml; do
  name=$(basename "$bad" .yaml)
  expect=$(sed -n '1s/^# expect: //p' "$bad")
  if "$work/render" -chart "$chart" -f "$bad" -o /dev/null 2>"$work/bad.err"; then
    say "not ok - bad/$name.yaml is refused (it rendered)"
  elif grep -qF -- "$expect" "$work/bad.err"; then
    say "ok - bad/$name.yaml is refused: $expect"
  else
    say "not ok - bad/$name.yaml is refused with \"$expect\": $(cat "$work/bad.err")"
  fi
done

if [ -n "$keep" ]; then mkdir -p "$keep" && cp "$work"/*.yaml "$work"/*.notes "$keep"/; fi

pass=$(grep -c '^ok - ' "$log" || true)
fails=$(grep -c '^not ok - ' "$log" || true)
if [ "$fails" -gt 0 ]; then
  echo "# failures:"
  grep '^not ok - ' "$log"
fi
echo "chart: $pass passed, $fails failed"
[ "$fails" -eq 0 ]

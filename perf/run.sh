#!/usr/bin/env bash
# Bowline's benchmarks in one command (`npm run bench` runs this after building).
#
#   bash perf/run.sh            # end-to-end: Bowline beside HAProxy, nginx and node http-proxy (peers.sh)
#   bash perf/run.sh micro      # micro benchmarks only (head parser, chunked scanner, route matching)
#   bash perf/run.sh upstreams  # uWebSockets.js vs node:http vs nginx as plain upstreams (compare-upstreams.sh)
#   bash perf/run.sh reliability [scenario ...]   # balancing, zones, retries, failover (perf/reliability)
#   bash perf/run.sh xds [--clients 100,1000,3000 ...]   # control plane at scale (perf/xds/scale.ts)
#   bash perf/run.sh mtls       # mutual TLS on the mesh hop: Bowline -> Bowline beside HAProxy -> HAProxy (perf/mtls)
#   bash perf/run.sh h2api      # node:http2's core session API vs its compatibility layer, with h2load (perf/h2)
#   bash perf/run.sh grpc       # gRPC unary calls through Bowline beside HAProxy and direct, with h2load (perf/h2/grpc.ts)
#   bash perf/run.sh mcp        # MCP tools/call at 500 calls/s and time to the first SSE event: direct, Bowline
#                               # plain, Bowline with MCP inspection + authorization, HAProxy (perf/mcp/run.ts)
#   bash perf/run.sh all        # micro, then upstreams, then end-to-end
#
# End-to-end knobs are passed through to peers.sh (see its header): ROUNDS DURATION CONNS WARMUP MODE
# (pinned by default) LAT LAT_DURATION LAT_ROUNDS RATE H2 TPUT CONFIGS SCRATCH OUT QUIET_MAX ... and:
#   BOWLINE_PORT=18200      where Bowline listens during the run
#   BOWLINE_WORKERS         engine workers (default: the harness's PROXY_THREADS, i.e. 1 pinned, 2 both)
#   BOWLINE_ARGS            extra arguments for `bowline proxy`
#   PEERS=<path>            the harness (default: <repo>/../shared/bench/peers.sh)
#   SKIP_BUILD=1            use dist/ as it is; SKIP_INSTALL=1 skips apt-get/npm checks
#   ISOLATE_NET=1           run in a private network namespace (root): no port clashes with other servers
# Micro knobs: MICRO_ROUNDS MICRO_ROUND_MS MICRO_WARMUP_MS MICRO_SUITES="head chunked route sse".
# mTLS knobs (perf/README.md, "mTLS"): ROUNDS DURATION CONNS WARMUP RATE LAT LAT_DURATION LAT_ROUNDS HS HS_DURATION
# HS_ROUNDS HS_CLIENTS TPUT OUT QUIET_MAX NOISY_MAX ...; ports 18600-18631.
# Exit status: 0 ok, 1 setup failure, 2 usage, 3 the run finished but some config had errors.
set -Eeuo pipefail
set +m

# Guard: this script re-runs itself at most twice (ISOLATE_NET); never let that recurse further.
export _PERF_DEPTH=$((${_PERF_DEPTH:-0} + 1))
((_PERF_DEPTH <= 3)) || { echo "perf/run.sh: re-entered too deeply; stopping" >&2; exit 1; }
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHAT=${1:-peers}
case $WHAT in
  peers|micro|upstreams|all|reliability|xds|mtls|h2api|grpc|mcp) ;;
  -h|--help|help) sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: perf/run.sh [peers|micro|upstreams|all|reliability|xds|mtls|h2api|grpc|mcp]" >&2; exit 2 ;;
esac

log() { echo "[$(date +%H:%M:%S)] perf/run.sh: $*" >&2; }
die() { echo "perf/run.sh: ERROR: $*" >&2; exit 1; }

# ISOLATE_NET=1: run everything in a private network namespace (root + unshare), so that servers other
# people left on this machine's loopback cannot collide with the harness's fixed ports.
if [[ ${ISOLATE_NET:-0} == 1 && -z ${_PERF_IN_NETNS:-} && -z ${_PERF_INSTALL_ONLY:-} ]]; then
  command -v unshare >/dev/null && command -v ip >/dev/null || die "ISOLATE_NET=1 needs unshare and ip"
  # The namespace has no route to the package registries: install everything first, out here.
  if [[ ${SKIP_INSTALL:-0} != 1 ]]; then
    _PERF_INSTALL_ONLY=1 bash "${BASH_SOURCE[0]}" "$@" || exit $?
    export SKIP_INSTALL=1
  fi
  export _PERF_IN_NETNS=1
  exec unshare -n bash -c 'ip link set lo up && exec bash "$0" "$@"' "${BASH_SOURCE[0]}" "$@"
fi

# ------------------------------------------------------------------ install
install_system_packages() {
  local pkgs=()
  command -v wrk     >/dev/null || pkgs+=(wrk)
  command -v haproxy >/dev/null || pkgs+=(haproxy)
  command -v nginx   >/dev/null || pkgs+=(nginx)
  command -v h2load  >/dev/null || pkgs+=(nghttp2-client)
  command -v curl    >/dev/null || pkgs+=(curl)
  command -v taskset >/dev/null || pkgs+=(util-linux)
  command -v ss      >/dev/null || pkgs+=(iproute2)
  command -v pgrep   >/dev/null || pkgs+=(procps)
  command -v openssl >/dev/null || pkgs+=(openssl)
  ((${#pkgs[@]})) || return 0
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "missing ${pkgs[*]}; install them (apt-get install ${pkgs[*]}) or run as root"
    sudo=(sudo)
  fi
  command -v apt-get >/dev/null || die "missing ${pkgs[*]} and no apt-get here: install them with your package manager"
  log "apt-get install ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq >/dev/null || die "apt-get update failed"
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null || die "apt-get install ${pkgs[*]} failed"
}

ensure_node_modules() {
  if ! (cd "$REPO" && node -e "require.resolve('typescript'); require.resolve('uWebSockets.js')" 2>/dev/null); then
    log "installing the project's npm dependencies (npm ci)"
    (cd "$REPO" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed"
  fi
}

build() {
  # `npm run bench` has just built; a direct call builds here so that dist/ matches the sources.
  if [[ ${SKIP_BUILD:-0} == 1 || ${npm_lifecycle_event:-} == bench ]]; then return 0; fi
  log "building (npm run build)"
  (cd "$REPO" && npm run -s build >&2) || die "build failed (tsc errors above)"
}

# Another agent/user may be load testing on this machine: do not start while their wrk/h2load runs.
wait_for_other_load() {
  local deadline=$((SECONDS + ${OTHER_LOAD_WAIT:-300}))
  while pgrep -x wrk >/dev/null || pgrep -x h2load >/dev/null; do
    ((SECONDS < deadline)) || { log "another wrk/h2load is still running; going ahead"; return 0; }
    log "waiting: another wrk/h2load is running"
    sleep 5
  done
}

# ------------------------------------------------------------------ micro
run_micro() {
  log "micro benchmarks"
  local pin=()
  # On a machine with a spare core, keep the timing loop on one CPU (less migration noise).
  if command -v taskset >/dev/null && (($(nproc) > 1)); then pin=(taskset -c "${MICRO_CPU:-1}"); fi
  # shellcheck disable=SC2086
  "${pin[@]}" node "$REPO/dist/perf/micro/main.js" ${MICRO_SUITES:-}
}

# ------------------------------------------------------------------ upstreams
run_upstreams() {
  log "benchmark upstreams (perf/compare-upstreams.sh)"
  wait_for_other_load
  SKIP_BUILD=1 bash "$REPO/perf/compare-upstreams.sh"
}

# ------------------------------------------------------------------ reliability
run_reliability() {
  log "reliability scenarios (perf/reliability/run.ts): the proxy pinned to CPU 0, load and upstreams beside it"
  wait_for_other_load
  local pin=()
  if command -v taskset >/dev/null && (($(nproc) > 1)); then pin=(taskset -c 1); fi
  "${pin[@]}" node "$REPO/dist/perf/reliability/run.js" "$@"
}

# ------------------------------------------------------------------ xds
run_xds() {
  log "control plane scale (perf/xds/scale.ts): bowline control pinned to CPU 0, simulated ADS clients on CPU 1"
  wait_for_other_load
  node "$REPO/dist/perf/xds/scale.js" "$@"
}

# ------------------------------------------------------------------ mtls
run_mtls() {
  log "mutual TLS on the mesh hop (perf/mtls/run.ts): Bowline -> Bowline beside HAProxy -> HAProxy (and a node:tls relay pair as a reference), proxies on CPU 1, load and upstream on CPU 0"
  command -v openssl >/dev/null || die "openssl missing (apt-get install openssl)"
  wait_for_other_load
  node "$REPO/dist/perf/mtls/run.js" "$@"
}

# ------------------------------------------------------------------ h2api
run_h2api() {
  log "node:http2 core session API vs compatibility layer (perf/h2/api-cost.ts): measured process on CPU 1, h2load on CPU 0"
  command -v h2load >/dev/null || die "h2load missing (apt-get install nghttp2-client)"
  wait_for_other_load
  node "$REPO/dist/perf/h2/api-cost.js" "$@"
}

# ------------------------------------------------------------------ mcp
run_mcp() {
  log "MCP through Bowline (plain, and with inspection + authorization) beside HAProxy and direct (perf/mcp/run.ts)"
  command -v haproxy >/dev/null || die "haproxy missing (apt-get install haproxy)"
  wait_for_other_load
  node "$REPO/dist/perf/mcp/run.js" \
    --proxy-cmd "bowline=node $REPO/dist/bin/bowline.js proxy --listen 127.0.0.1:{port} --to 127.0.0.1:{upstream} --workers 1 --admin 127.0.0.1:{admin}" \
    --proxy-cmd "bowline-mcp=bash $REPO/perf/mcp/policy-proxy.sh {port} {upstream} {admin}" \
    --haproxy "$@"
}

# ------------------------------------------------------------------ grpc
run_grpc() {
  log "gRPC unary through Bowline beside HAProxy and direct (perf/h2/grpc.ts): proxies on CPU 1, h2load and the grpc-js server on CPU 0"
  command -v h2load >/dev/null || die "h2load missing (apt-get install nghttp2-client)"
  command -v haproxy >/dev/null || die "haproxy missing (apt-get install haproxy)"
  wait_for_other_load
  node "$REPO/dist/perf/h2/grpc.js" "$@"
}

# ------------------------------------------------------------------ peers
BG_PID=""
stop_metrics_watcher() {
  if [[ -n $BG_PID ]]; then kill "$BG_PID" 2>/dev/null || true; wait "$BG_PID" 2>/dev/null || true; BG_PID=""; fi
}
trap stop_metrics_watcher EXIT

# Scrapes Bowline's /metrics (admin port 0: the port is read from its log) every 5 s as a fallback, and
# once more when peers.sh writes rss.tsv (all phases done, proxies still up for the report).
metrics_watcher() {
  local out=$1 file=$2 port="" last=0 fd
  exec {fd}<> <(:)
  while :; do
    if [[ -z $port ]]; then
      port=$(sed -n 's/.*admin on [^ ]*:\([0-9][0-9]*\) .*/\1/p' "$out/logs/bowline.log" 2>/dev/null | tail -1 || true)
    fi
    if [[ -n $port ]]; then
      if [[ -e $out/rss.tsv ]]; then
        curl -s --max-time 2 "http://127.0.0.1:$port/metrics" > "$file.tmp" 2>/dev/null && [[ -s $file.tmp ]] && mv "$file.tmp" "$file"
        return 0
      fi
      if ((SECONDS - last >= 5)); then
        last=$SECONDS
        curl -s --max-time 2 "http://127.0.0.1:$port/metrics" > "$file.tmp" 2>/dev/null && [[ -s $file.tmp ]] && mv "$file.tmp" "$file"
      fi
    fi
    read -r -t 0.1 -u "$fd" || true
  done
}

run_peers() {
  local peers=${PEERS:-$(dirname "$REPO")/shared/bench/peers.sh}
  if [[ ! -f $peers ]]; then
    cat >&2 <<EOF
perf/run.sh: the peer harness was not found at $peers.
  The end-to-end comparison runs Bowline inside the team's shared harness (shared/bench/peers.sh,
  which starts the nginx upstream, HAProxy, nginx and node http-proxy, interleaves the rounds and
  prints the tables). Put the shared/ folder next to this repository, or point PEERS=/path/to/peers.sh
  at it. Without it, 'perf/run.sh micro' and 'perf/run.sh upstreams' still work.
EOF
    return 1
  fi
  local bl=$REPO/dist/bin/bowline.js exe
  [[ -f $bl ]] || die "$bl missing: run npm run build"
  if [[ -x $bl ]]; then
    exe=$(printf '%q' "$bl") # its shebang carries the node flags the proxy is meant to run with
  else
    local flags; flags=$(head -1 "$bl" | sed -n 's|^#!/usr/bin/env -S node||p')
    exe="node$flags $(printf '%q' "$bl")"
  fi
  export MODE=${MODE:-pinned}
  export CONFIGS=${CONFIGS:-"direct haproxy nginx http-proxy"}
  export SCRATCH=${SCRATCH:-/tmp/peerbench}
  export OUT=${OUT:-$SCRATCH/results/$(date +%Y%m%d-%H%M%S)-$MODE-bowline}
  export PROXY_NAME=bowline
  export PROXY_PORT=${BOWLINE_PORT:-18200}
  # The escaped \$ stay literal: peers.sh's `bash -c` expands LISTEN_PORT, UPSTREAM_* and PROXY_THREADS.
  # The upstream nginx speaks HTTP/1.1: h2c clients (the h2load phase, on the same port: Bowline
  # detects the preface) are translated, as HAProxy's h2c frontend does in the same run.
  export PROXY_CMD="$exe proxy --listen 127.0.0.1:\$LISTEN_PORT --to \$UPSTREAM_HOST:\$UPSTREAM_PORT --workers ${BOWLINE_WORKERS:-\$PROXY_THREADS} --admin 127.0.0.1:0 --upstream-protocol http1 ${BOWLINE_ARGS:-}"
  export PROXY_H2_PORT=${PROXY_H2_PORT:-$PROXY_PORT}
  [[ ${SKIP_INSTALL:-0} == 1 ]] && export SKIP_INSTALL
  mkdir -p "$OUT/logs"
  log "end-to-end run via $peers (MODE=$MODE, CONFIGS='$CONFIGS' + bowline on :$PROXY_PORT); results in $OUT"
  wait_for_other_load
  # peers.sh's ports are fixed (upstream 18080/18090, peers 18101-18104/18111-18112): another run, or a
  # leftover server, holding one of them makes it stop at once; wait a while for them to free up.
  local deadline=$((SECONDS + ${OTHER_LOAD_WAIT:-300})) busy
  while busy=$(ss -Htln 2>/dev/null | awk '{print $4}' | grep -E ":(18080|18090|1810[1-4]|1811[12]|$PROXY_PORT)\$" | tr '\n' ' '); [[ -n $busy ]]; do
    if ((SECONDS >= deadline)); then
      log "ports still in use: $busy(ss -tlnp shows by whom); peers.sh needs them free (ISOLATE_NET=1 sidesteps leftovers)"
      break
    fi
    log "waiting: ports in use by another process: $busy(another run? a leftover server? ISOLATE_NET=1 sidesteps it)"
    sleep 10
  done
  local metrics=$OUT/bowline-metrics.prom rc=0
  metrics_watcher "$OUT" "$metrics" &
  BG_PID=$!
  bash "$peers" || rc=$?
  stop_metrics_watcher
  if ((rc != 0 && rc != 3)); then
    log "peers.sh failed (exit $rc); logs in $OUT/logs"
    [[ -f $OUT/logs/bowline.log ]] && { echo "--- last lines of $OUT/logs/bowline.log:" >&2; tail -20 "$OUT/logs/bowline.log" >&2; }
    return "$rc"
  fi
  echo
  node "$REPO/dist/perf/lib/peer-summary.js" "$OUT" bowline "$metrics" | tee -a "$OUT/summary.md"
  if [[ -s $OUT/logs/bowline.log ]] && grep -qiE 'error|warn|exception' "$OUT/logs/bowline.log"; then
    echo
    echo "Bowline logged warnings/errors during the run (first lines of $OUT/logs/bowline.log):"
    grep -iE 'error|warn|exception' "$OUT/logs/bowline.log" | head -5 | sed 's/^/    /'
  fi
  ((rc == 0)) || log "peers.sh reported errors in some config (exit 3): see the errors column and $OUT/logs"
  return "$rc"
}

# ------------------------------------------------------------------ main
if [[ ${SKIP_INSTALL:-0} != 1 ]]; then
  [[ $WHAT == micro ]] || install_system_packages
  ensure_node_modules
fi
command -v node >/dev/null || die "node missing (Node 20 or later)"
if [[ ${_PERF_INSTALL_ONLY:-0} == 1 ]]; then
  # Only for ISOLATE_NET: let peers.sh install its own npm peers (into $SCRATCH) by giving it a config
  # name it rejects right after its install step (exit 2), so that the run inside the namespace needs no network.
  if [[ $WHAT == peers || $WHAT == all ]]; then
    peers=${PEERS:-$(dirname "$REPO")/shared/bench/peers.sh}
    if [[ -f $peers ]]; then
      tmp=$(mktemp -d)
      prc=0; OUT=$tmp CONFIGS=install-only bash "$peers" >/dev/null 2>"$tmp/err" || prc=$?
      if ((prc != 2)); then cat "$tmp/err" >&2; rm -rf "$tmp"; die "installing the peers' dependencies failed"; fi
      rm -rf "$tmp"
    fi
  fi
  exit 0
fi
build

rc=0
case $WHAT in
  micro) run_micro ;;
  upstreams) run_upstreams ;;
  peers) run_peers || rc=$? ;;
  reliability) run_reliability "${@:2}" || rc=$? ;;
  xds) run_xds "${@:2}" || rc=$? ;;
  mtls) run_mtls "${@:2}" || rc=$? ;;
  h2api) run_h2api "${@:2}" || rc=$? ;;
  grpc) run_grpc "${@:2}" || rc=$? ;;
  mcp) run_mcp "${@:2}" || rc=$? ;;
  all)
    run_micro
    run_upstreams || rc=$?
    run_peers || { r=$?; ((rc == 0)) && rc=$r; } ;;
esac
exit "$rc"

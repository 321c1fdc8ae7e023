#!/usr/bin/env bash
# Where does uWebSockets.js serve best? Measures three HTTP/1.1 servers that answer every request with
# 200 "ok" (keep-alive), directly (no proxy): (a) perf/upstream.ts on uWebSockets.js, (b) the same on
# node:http, (c) nginx `return 200 'ok'` (1 worker). wrk -t1 -c50, pinned: the server alone on CPU 1,
# wrk on CPU 0. Rounds are interleaved (a b c, a b c, ...); the table shows medians and ratios.
#
#   bash perf/compare-upstreams.sh              # from the repo root (builds dist/ first)
#   ROUNDS=5 DURATION=10 bash perf/compare-upstreams.sh
#
# Knobs (env): ROUNDS=3 DURATION=10 CONNS=50 WARMUP=2 SERVERS="uws node nginx" SERVER_CPU=1 LOAD_CPU=0
#              QUIET_MAX=15 QUIET_WAIT=60 NOISY_MAX=15 RETRIES=2 (noise control, % of one core)
#              SKIP_BUILD=1 (use dist/ as it is)  OUT=<dir for configs, logs and raw wrk output>
# Ports: 18301 (uws), 18302 (node:http), 18303 (nginx).
set -Eeuo pipefail
set +m

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
WARMUP=${WARMUP:-2}
SERVERS=${SERVERS:-"uws node nginx"}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
OUT=${OUT:-/tmp/bowline-perf/upstreams-$(date +%Y%m%d-%H%M%S)}
declare -A PORT=([uws]=18301 [node]=18302 [nginx]=18303)
declare -A LABEL=([uws]="uWebSockets.js (perf/upstream.ts)" [node]="node:http (perf/upstream.ts --node)" [nginx]="nginx return 200 'ok' (1 worker)")
declare -A PID=()
STARTED=()

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { echo "compare-upstreams.sh: ERROR: $*" >&2; exit 1; }

for s in $SERVERS; do [[ -n "${PORT[$s]:-}" ]] || { echo "unknown server '$s' (known: uws node nginx)" >&2; exit 2; }; done
for c in wrk nginx taskset curl node; do command -v "$c" >/dev/null || die "$c missing (perf/run.sh installs it)"; done
if ((SERVER_CPU >= $(nproc) || LOAD_CPU >= $(nproc))); then die "needs CPUs $LOAD_CPU and $SERVER_CPU; this machine has $(nproc)"; fi

cleanup() {
  local rc=$? i p
  trap - EXIT INT TERM
  for ((i=${#STARTED[@]}-1; i>=0; i--)); do
    p=${PID[${STARTED[$i]}]}; kill -TERM -- "-$p" 2>/dev/null || true
  done
  for _ in $(seq 30); do
    local any=0
    for s in "${STARTED[@]}"; do kill -0 "${PID[$s]}" 2>/dev/null && any=1; done
    ((any)) || break; sleep 0.1
  done
  for s in "${STARTED[@]}"; do kill -KILL -- "-${PID[$s]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "building (npm run build)"
  (cd "$REPO" && npm run -s build >&2) || die "build failed"
fi
[[ -f $REPO/dist/perf/upstream.js ]] || die "dist/perf/upstream.js missing: run npm run build"

mkdir -p "$OUT"/{logs,raw,conf,tmp}
cat > "$OUT/conf/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $OUT/tmp/nginx.pid;
error_log $OUT/logs/nginx-error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $OUT/tmp/body;
  proxy_temp_path $OUT/tmp/proxy;
  fastcgi_temp_path $OUT/tmp/fastcgi;
  uwsgi_temp_path $OUT/tmp/uwsgi;
  scgi_temp_path $OUT/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  default_type text/plain;
  server {
    listen 127.0.0.1:${PORT[nginx]} backlog=4096;
    location / { return 200 'ok'; }
  }
}
EOF

start() { # name command...
  local name=$1; shift
  ss -Htln "sport = :${PORT[$name]}" | grep -q . && die "port ${PORT[$name]} ($name) already in use"
  setsid taskset -c "$SERVER_CPU" "$@" </dev/null >"$OUT/logs/$name.log" 2>&1 &
  PID[$name]=$!
  STARTED+=("$name")
}
ready() { # name
  local name=$1 deadline=$((SECONDS + 15)) body=""
  while ((SECONDS < deadline)); do
    kill -0 "${PID[$name]}" 2>/dev/null || { cat "$OUT/logs/$name.log" >&2; die "$name exited during startup"; }
    body=$(curl -s --max-time 1 -w ' %{http_code}' "http://127.0.0.1:${PORT[$name]}/" 2>/dev/null || true)
    [[ $body == "ok 200" ]] && return 0
    sleep 0.2
  done
  die "$name not serving 'ok' on :${PORT[$name]} (last: '$body')"
}

# Other agents may be load testing on this machine: never overlap with their wrk/h2load.
wait_for_other_load() {
  local deadline=$((SECONDS + ${OTHER_LOAD_WAIT:-300}))
  while pgrep -x wrk >/dev/null || pgrep -x h2load >/dev/null; do
    ((SECONDS < deadline)) || { log "another wrk/h2load is still running; measuring anyway"; return 0; }
    log "waiting: another wrk/h2load is running"; sleep 2
  done
}

session_hwm_kib() {
  local t=0 p v
  for p in $(ps -s "$1" -o pid= 2>/dev/null); do
    v=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status" 2>/dev/null || true); t=$((t + ${v:-0}))
  done
  echo "$t"
}

for s in $SERVERS; do
  case $s in
    uws)   start uws   node "$REPO/dist/perf/upstream.js" --port "${PORT[uws]}" ;;
    node)  start node  node "$REPO/dist/perf/upstream.js" --node --port "${PORT[node]}" ;;
    nginx) start nginx nginx -p "$OUT/" -c "$OUT/conf/nginx.conf" ;;
  esac
done
for s in $SERVERS; do ready "$s"; done
if [[ " $SERVERS " == *" uws "* ]] && ! grep -q uWebSockets "$OUT/logs/uws.log"; then
  log "!! the uws server fell back to node:http (see $OUT/logs/uws.log)"
fi

HZ=$(getconf CLK_TCK)
QUIET_MAX=${QUIET_MAX:-15}   # % of a core that processes outside this benchmark may use before a run starts
QUIET_WAIT=${QUIET_WAIT:-60} # ... waiting at most this many seconds for that
NOISY_MAX=${NOISY_MAX:-15}   # a run during which they used more is repeated (at most RETRIES times)
RETRIES=${RETRIES:-2}
# snap VAR: "ns busy_ticks children_ticks sid=ticks ...". busy = user+nice+system+irq+softirq of all CPUs;
# children = this shell's waited-for children (wrk, via `times`, which must run in this shell).
snap() {
  times > "$OUT/tmp/times.txt"
  local ch
  ch=$(awk -v hz="$HZ" 'NR==2 { split($1, a, /[ms]/); split($2, b, /[ms]/); printf "%d", (a[1]*60 + a[2] + b[1]*60 + b[2]) * hz + 0.5 }' "$OUT/tmp/times.txt")
  printf -v "$1" '%s' "$({ cat /proc/stat; cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v ns="$(date +%s%N)" -v ch="$ch" -v sids="${PID[*]}" '
    BEGIN { n = split(sids, s, " "); for (i = 1; i <= n; i++) { want[s[i]] = 1; tk[s[i]] = 0 } }
    /^cpu / { busy = $2 + $3 + $4 + $7 + $8; next }
    /^[0-9]+ \(/ { l = $0; sub(/^.*\) /, "", l); split(l, f, " "); if (f[4] in want) tk[f[4]] += f[12] + f[13] }
    END { printf "%s %d %d", ns, busy, ch; for (k in tk) printf " %s=%d", k, tk[k]; print "" }')"
}
# snap_diff A B SID -> "server_cpu% other%" (% of one core); other = busy - our servers - our children.
snap_diff() {
  awk -v a="$1" -v b="$2" -v sid="$3" -v hz="$HZ" 'BEGIN {
    n = split(a, x, " "); m = split(b, y, " ")
    for (i = 4; i <= n; i++) { split(x[i], kv, "="); s0[kv[1]] = kv[2] }
    ours = 0; srv = 0
    for (i = 4; i <= m; i++) { split(y[i], kv, "="); d = kv[2] - s0[kv[1]]; ours += d; if (kv[1] == sid) srv = d }
    el = (y[1] - x[1]) / 1e9; if (el <= 0) el = 1e-9
    ours += y[3] - x[3]
    o = 100 * ((y[2] - x[2]) - ours) / hz / el; if (o < 0) o = 0
    printf "%.0f %.1f\n", 100 * srv / hz / el, o }'
}
wait_quiet() {
  local deadline=$((SECONDS + QUIET_WAIT)) a b other
  while :; do
    snap a; sleep 1; snap b
    read -r _ other < <(snap_diff "$a" "$b" "")
    awk -v o="$other" -v m="$QUIET_MAX" 'BEGIN { exit !(o < m) }' && return 0
    if ((SECONDS >= deadline)); then log "   machine not quiet (others at ${other}% of a core); measuring anyway"; return 0; fi
    log "   waiting for quiet: other processes at ${other}% of a core"
  done
}
wrk_run() { # name seconds rawfile
  timeout $(($2 + 30)) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$2"s --timeout 5s --latency "http://127.0.0.1:${PORT[$1]}/" > "$3" 2>&1
}
log "warm-up ${WARMUP}s each"
for s in $SERVERS; do wait_for_other_load; wrk_run "$s" "$WARMUP" "$OUT/raw/warmup-$s.txt" || die "warm-up failed for $s"; done

: > "$OUT/runs.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
  for s in $SERVERS; do
    for ((try = 0; ; try++)); do
      wait_for_other_load
      wait_quiet
      log "round $r/$ROUNDS: $s"
      snap a
      wrk_run "$s" "$DURATION" "$OUT/raw/$s-r$r.txt" || log "!! wrk failed for $s (see $OUT/raw/$s-r$r.txt)"
      snap b
      read -r cpu other < <(snap_diff "$a" "$b" "${PID[$s]}")
      if awk -v o="$other" -v m="$NOISY_MAX" 'BEGIN { exit !(o > m) }' && ((try < RETRIES)); then
        log "   other processes used ${other}% of a core during the run; repeating it"
        continue
      fi
      echo -e "$s\t$r\t$OUT/raw/$s-r$r.txt\t$cpu\t$other" >> "$OUT/runs.tsv"
      break
    done
    kill -0 "${PID[$s]}" 2>/dev/null || log "!! $s died"
  done
done
: > "$OUT/rss.tsv"
for s in $SERVERS; do echo -e "$s\t$(session_hwm_kib "${PID[$s]}")" >> "$OUT/rss.tsv"; done

{
  echo "### Benchmark upstreams served directly — $(date -u '+%Y-%m-%d %H:%M') UTC"
  echo
  echo '```'
  echo "wrk -t1 -c$CONNS -d${DURATION}s --latency, $ROUNDS interleaved round(s); server on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU"
  echo "node $(node -v); $(nginx -v 2>&1 | cut -d: -f2 | xargs); uWebSockets.js $(cd "$REPO" && node -p "require('uWebSockets.js/package.json').version" 2>/dev/null || echo '?'); $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo '```'
  echo
  awk -F'\t' -v order="$SERVERS" -v labels="uws=${LABEL[uws]};node=${LABEL[node]};nginx=${LABEL[nginx]}" -v rssf="$OUT/rss.tsv" '
    function toms(v, u) { return u == "us" ? v / 1000 : u == "ms" ? v : u == "s" ? v * 1000 : v * 60000 }
    function med(arr, n,   i, j, t, b) { for (i = 1; i <= n; i++) b[i] = arr[i]
      for (i = 2; i <= n; i++) { t = b[i]; for (j = i - 1; j >= 1 && b[j] > t; j--) b[j + 1] = b[j]; b[j + 1] = t }
      return n == 0 ? -1 : (n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2) }
    function fmtk(x,   s, r) { if (x < 0) return "n/a"; s = sprintf("%d", x + 0.5); r = ""
      while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) } return s r }
    BEGIN { n = split(labels, L, ";"); for (i = 1; i <= n; i++) { split(L[i], kv, "="); label[kv[1]] = kv[2] }
      while ((getline line < rssf) > 0) { split(line, f, "\t"); rss[f[1]] = f[2] } }
    { s = $1; k = ++cnt[s]; cpu[s, k] = $4; errs[s] += 0; if ($5 + 0 > oth[s]) oth[s] = $5 + 0
      rps = -1; p50 = -1; p99 = -1
      while ((getline line < $3) > 0) {
        if (line ~ /^Requests\/sec:/) { split(line, w, /[ \t]+/); rps = w[2] }
        if (line ~ /^[ \t]+50%[ \t]/) { match(line, /[0-9.]+(us|ms|s|m)/); v = substr(line, RSTART, RLENGTH); u = v; sub(/[0-9.]+/, "", u); p50 = toms(v + 0, u) }
        if (line ~ /^[ \t]+99%[ \t]/) { match(line, /[0-9.]+(us|ms|s|m)/); v = substr(line, RSTART, RLENGTH); u = v; sub(/[0-9.]+/, "", u); p99 = toms(v + 0, u) }
        if (line ~ /Non-2xx|Socket errors/) errs[s]++
      }
      close($3)
      R[s, k] = rps; P50[s, k] = p50; P99[s, k] = p99 }
    END {
      m = split(order, O, " ")
      for (i = 1; i <= m; i++) { s = O[i]; for (k = 1; k <= cnt[s]; k++) { a[k] = R[s, k]; b[k] = P50[s, k]; c[k] = P99[s, k]; d[k] = cpu[s, k] }
        mr[s] = med(a, cnt[s]); m50[s] = med(b, cnt[s]); m99[s] = med(c, cnt[s]); mc[s] = med(d, cnt[s])
        lo[s] = 1e18; hi[s] = 0; for (k = 1; k <= cnt[s]; k++) { if (a[k] < lo[s]) lo[s] = a[k]; if (a[k] > hi[s]) hi[s] = a[k] } }
      print "| server | req/s (median) | min–max | p50 ms | p99 ms | server CPU % | req/s per server core | peak RSS MiB | vs nginx | vs node:http | other % | errors |"
      print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
      for (i = 1; i <= m; i++) { s = O[i]
        vn = ("nginx" in mr && mr["nginx"] > 0) ? sprintf("%.2f×", mr[s] / mr["nginx"]) : "n/a"
        vh = ("node" in mr && mr["node"] > 0) ? sprintf("%.2f×", mr[s] / mr["node"]) : "n/a"
        printf "| %s | %s | %s–%s | %.2f | %.2f | %d | %s | %.1f | %s | %s | %.0f | %s |\n", label[s], fmtk(mr[s]), fmtk(lo[s]), fmtk(hi[s]), m50[s], m99[s], mc[s],
          (mc[s] > 0 ? fmtk(mr[s] / (mc[s] / 100)) : "n/a"), rss[s] / 1024, vn, vh, oth[s], (errs[s] ? "yes (see raw)" : 0) }
    }' "$OUT/runs.tsv"
  echo
  echo "Medians over rounds. server CPU % = utime+stime of the server's processes during the run, in % of one core; req/s per server core = req/s ÷ (server CPU/100); peak RSS = VmHWM of the server's processes after all rounds; other % = worst round's CPU used by processes outside this benchmark (runs above NOISY_MAX=$NOISY_MAX % are repeated up to RETRIES=$RETRIES times). When a server's CPU is well below 100 %, the client (one wrk thread on one core) was the limit: compare req/s per server core then."
} | tee "$OUT/summary.md"
log "raw results in $OUT"

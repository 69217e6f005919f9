#!/usr/bin/env bash
# certgate's own cost per connection, paired round by round: one or more certgate checkouts and the
# bare Node mTLS proxy of ../shared/tools/handshake-bench, each started once and warmed, then measured
# in turn every round with the same C load generator; per round, certgate's CPU per authenticated
# connection minus the bare proxy's, and the median of those. run.sh's median of each server's rounds
# does not pair a round with its neighbour, which a noisy machine turns into nonsense (negative costs).
#
#   load-tests/own-cost.sh CHECKOUT... [env: NODE, ROUNDS=6, DUR=6 (seconds per round), WARM=10, CALLGRIND=DIR, FLOOR=1]
#   e.g. NODE=/path/to/node22 load-tests/own-cost.sh . ../certgate-before
#
# FLOOR=1 adds a third server every round: the bare proxy plus certgate's warm-path decision and
# nothing else (load-tests/validation-floor.ts, from the first checkout's build). It reads as
# "floor" (what the decision costs in place, over the bare proxy), and each certgate gets a line
# "beyond the floor" (everything else it does per connection).
#
# CALLGRIND=DIR counts instructions instead of CPU time: every server runs under valgrind's
# callgrind (apt-get install valgrind), 4 connections in flight, and each round reports the main
# thread's instructions per connection (its dump kept in DIR for callgrind_annotate). Instruction
# counts repeat within 2-4 % where CPU time moves by 30 %, so they resolve smaller changes; but they
# are not time (cold code runs at a fraction of the handshake's instructions per cycle), valgrind's
# virtual CPU makes OpenSSL take other code paths (no ADX/AVX-512), and work done per second rather
# than per connection is inflated by valgrind's ~30x slowdown; V8 also runs JavaScript differently
# there (runtime calls native runs never make), so read the JIT share as an upper bound. Defaults
# then: DUR=30, WARM=40.
#
# Each checkout needs dist/ (npm run build) and node_modules built for NODE. Needs what run.sh needs
# (gcc, libssl-dev) and its cache (HANDSHAKE_BENCH_CACHE, default /tmp/handshake-bench-cache): run
# run.sh once first. CPU is utime+stime of every thread of each server from /proc; the main thread's
# share is printed too. Every load is bounded (DUR seconds per round) and stops by itself.
set -uo pipefail
BENCH=$(cd "$(dirname "$0")/../../shared/tools/handshake-bench" 2>/dev/null && pwd) || { echo "needs ../shared/tools/handshake-bench beside the project"; exit 1; }
CACHE=${HANDSHAKE_BENCH_CACHE:-/tmp/handshake-bench-cache}; PKI=$CACHE/pki/ec
[ -x "$CACHE/mtls-bench" ] && [ -f "$PKI/server.key" ] || { echo "run $BENCH/run.sh once first (it builds the load generator and the PKI in $CACHE)"; exit 1; }
[ $# -gt 0 ] || { sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 2; }
NODE=${NODE:-node}; ROUNDS=${ROUNDS:-6}; CG=${CALLGRIND:-}
if [ -n "$CG" ]; then
  command -v valgrind > /dev/null || { echo "CALLGRIND needs valgrind (apt-get install valgrind)"; exit 1; }
  mkdir -p "$CG"; CG=$(cd "$CG" && pwd); DUR=${DUR:-30}; WARM=${WARM:-40}; INFLIGHT=4; STARTUP=3000
else
  DUR=${DUR:-6}; WARM=${WARM:-10}; INFLIGHT=16; STARTUP=600
fi
W=$(mktemp -d /tmp/own-cost.XXXX); PIDS=()
# Under callgrind: instrumentation off until a round starts, one profile per thread.
RUN=(); [ -z "$CG" ] || RUN=(valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes "--callgrind-out-file=$W/cg.%p")
# Waits for the servers to exit (valgrind writes a last profile as it does) before removing their files.
cleanup() { for p in "${PIDS[@]}"; do kill -TERM -- -"$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
freeport() { "$NODE" -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
waitport() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
load() { "$CACHE/mtls-bench" -C "$PKI" -p "$1" -d "$2" -w "${3:-0}" -c "${4:-$INFLIGHT}" -T 30000 -r $'ping\n' -e ping -1 2>/dev/null | grep -o 'ok_total=[0-9]*' | head -1 | cut -d= -f2; }
# "main other" jiffies of a process: its main thread and all its other threads.
jiffies() { for t in /proc/"$1"/task/*; do sed 's/.*) //' "$t/stat" | awk -v main=$(( ${t##*/} == $1 )) '{ if (main) m += $12 + $13; else o += $12 + $13 } END { printf "%d %d\n", m, o }'; done | awk '{ m += $1; o += $2 } END { print m, o }'; }

"$NODE" -e "require('net').createServer(s=>{s.on('data',d=>s.write(d));s.on('error',()=>{})}).listen(0,'127.0.0.1',function(){require('fs').writeFileSync('$W/echo.port',String(this.address().port))})" &
PIDS+=($!); for _ in $(seq 50); do [ -s "$W/echo.port" ] && break; sleep 0.1; done; ECHO=$(cat "$W/echo.port")
# The registration run.sh does (the CA with proof of possession, 1,000 devices), reused from it.
sed -n '/^"\$NODE" - "\$ADMIN"/,/^JS$/p' "$BENCH/run.sh" | sed '1d;$d' > "$W/register.js"
grep -q generateVerificationCode "$W/register.js" || { echo "could not find the registration script in $BENCH/run.sh (has it changed?)"; exit 1; }
NAMES=(); PORTS=(); SERVERS=()
i=0
for dir in "$@"; do
  i=$((i + 1)); port=$(freeport); token=own-cost-$RANDOM$RANDOM
  ( cd "$dir" && export CERTGATE_DATA_DIR="$W/data$i" CERTGATE_LISTEN=127.0.0.1:$port CERTGATE_ADMIN_LISTEN=127.0.0.1:0 CERTGATE_PROTOCOL=tcp \
    CERTGATE_HANDSHAKE_RATE_PER_ADDRESS=0 CERTGATE_UPSTREAM=127.0.0.1:$ECHO CERTGATE_ADMIN_TOKEN=$token \
    CERTGATE_TLS_CERT=$PKI/server-fullchain.pem CERTGATE_TLS_KEY=$PKI/server.key && exec setsid "${RUN[@]}" "$NODE" dist/gateway/cli.js start > "$W/gw$i.log" 2>&1 ) &
  PIDS+=($!)
  for _ in $(seq $STARTUP); do grep -q "certgate listening" "$W/gw$i.log" 2>/dev/null && break; sleep 0.1; done
  admin=$(grep -o 'admin=[^ ]*' "$W/gw$i.log" | head -1 | cut -d= -f2)
  [ -n "$admin" ] || { tail -5 "$W/gw$i.log"; echo "certgate in $dir did not start (npm run build? node_modules for $NODE?)"; exit 1; }
  "$NODE" "$W/register.js" "$admin" "$token" "$PKI" "$W" || exit 1
  NAMES+=("$dir"); PORTS+=("$port"); SERVERS+=("$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)")
  echo "certgate $i = $dir: warm-up $WARM s, $(load "$port" "$WARM" 0) connections"
done
# A Node server script taking PKI_DIR PORT UPSTREAM_PORT, started in DIR, warmed, measured every round as NAME.
add_server() { # NAME DIR SCRIPT WARM-UP-SECONDS
  local port; port=$(freeport)
  ( cd "$2" && exec setsid "${RUN[@]}" "$NODE" "$3" "$PKI" "$port" "$ECHO" > "$W/$1.log" 2>&1 ) & PIDS+=($!)
  for _ in $(seq $((STARTUP / 100))); do waitport "$port" && break; done || { cat "$W/$1.log"; echo "$1 did not start"; exit 1; }
  echo "$1: warm-up $4 s, $(load "$port" "$4" 0) connections"
  NAMES+=("$1"); PORTS+=("$port"); SERVERS+=("$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)")
}
BWARM=2; [ -z "$CG" ] || BWARM=$WARM
add_server bare "$BENCH" "$BENCH/bare-proxy.js" "$BWARM"
if [ -n "${FLOOR:-}" ]; then
  floor="$(cd "$1" && pwd)/dist/load-tests/validation-floor.js"
  [ -f "$floor" ] || { echo "FLOOR needs $floor (npm run build in $1)"; exit 1; }
  add_server floor "$1" "$floor" "$WARM"
fi
echo "node $("$NODE" --version), $ROUNDS rounds of $DUR s, $INFLIGHT connections in flight${CG:+, instructions counted by callgrind}"
# Under callgrind: the main thread's instructions per connection in one round (its profile kept in $CG).
instructions() { # pid port round name
  callgrind_control -z "$1" > /dev/null 2>&1; callgrind_control -i on "$1" > /dev/null 2>&1
  local ok; ok=$(load "$2" "$DUR" 0)
  callgrind_control -i off "$1" > /dev/null 2>&1; callgrind_control -d "$1" > /dev/null 2>&1
  local main; for _ in $(seq 100); do main=$(ls -t "$W/cg.$1".*-01 2>/dev/null | head -1); [ -n "$main" ] && break; sleep 0.1; done
  local keep; keep="$CG/$(basename "$4")-round$3-$1.callgrind"; mv "$main" "$keep"; rm -f "$W/cg.$1".*-[0-9][0-9]
  awk -v r="$3" -v n="$4" -v ok="${ok:-0}" -v f="$keep" '/^totals:/ { t = $2 } END { if (ok > 0) printf "round %s: %s instructions main=%.0f per conn ok=%d (%s)\n", r, n, t / ok, ok, f; else printf "round %s: %s no connections\n", r, n }' "$keep" | tee -a "$W/rounds"
}
for r in $(seq "$ROUNDS"); do
  for k in "${!NAMES[@]}"; do
    if [ -n "$CG" ]; then instructions "${SERVERS[$k]}" "${PORTS[$k]}" "$r" "${NAMES[$k]}"; continue; fi
    read -r m0 o0 < <(jiffies "${SERVERS[$k]}")
    ok=$(load "${PORTS[$k]}" "$DUR" 1)
    read -r m1 o1 < <(jiffies "${SERVERS[$k]}")
    awk -v r="$r" -v n="${NAMES[$k]}" -v m=$((m1 - m0)) -v o=$((o1 - o0)) -v ok="${ok:-0}" \
      'BEGIN { if (ok > 0) printf "round %s: %s total=%.3f main=%.3f ms/conn ok=%d\n", r, n, (m + o) * 10 / ok, m * 10 / ok, ok; else printf "round %s: %s no connections\n", r, n }' | tee -a "$W/rounds"
  done
done
"$NODE" -e "
const text = require('fs').readFileSync('$W/rounds', 'utf8').trim()
const med = (a) => { a = [...a].sort((x, y) => x - y); const k = a.length; return k === 0 ? NaN : k % 2 ? a[(k - 1) / 2] : (a[k / 2 - 1] + a[k / 2]) / 2 }
if ('$CG' !== '') {
  const ir = text.split('\n').map((l) => l.match(/^round (\d+): (.+) instructions main=(\d+)/)).filter(Boolean)
  const bare = (r) => ir.find((l) => l[1] === r && l[2] === 'bare')
  for (const n of [...new Set(ir.map((l) => l[2]))].filter((n) => n !== 'bare')) {
    const pairs = ir.filter((l) => l[2] === n && bare(l[1])).map((l) => [+l[3], +bare(l[1])[3]])
    console.log(n + ': own instructions by round ' + pairs.map(([c, b]) => c - b).join(' ') + ' -> median ' + Math.round(med(pairs.map(([c, b]) => c - b))) + ' per connection (main thread; ' + (n === 'floor' ? 'floor ' : 'certgate ') + Math.round(med(pairs.map(([c]) => c))) + ', bare proxy ' + Math.round(med(pairs.map(([, b]) => b))) + '). Per function: callgrind_annotate --inclusive=no <profile>')
    const floor = (r) => ir.find((l) => l[1] === r && l[2] === 'floor')
    const beyond = ir.filter((l) => l[2] === n && n !== 'floor' && floor(l[1])).map((l) => +l[3] - +floor(l[1])[3])
    if (beyond.length > 0) console.log(n + ': beyond the floor by round ' + beyond.join(' ') + ' -> median ' + Math.round(med(beyond)) + ' instructions per connection')
  }
  process.exit(0)
}
const lines = text.split('\n').map((l) => l.match(/^round (\d+): (.+) total=([\d.]+) main=([\d.]+)/)).filter(Boolean)
const at = (r, n) => lines.find((l) => l[1] === r && l[2] === n)
for (const n of [...new Set(lines.map((l) => l[2]))].filter((n) => n !== 'bare')) {
  const pairs = lines.filter((l) => l[2] === n).map((l) => [l, at(l[1], 'bare')]).filter(([, b]) => b)
  const own = pairs.map(([c, b]) => c[3] - b[3])
  console.log(n + ': own cost by round ' + own.map((x) => x.toFixed(3)).join(' ') + ' -> median ' + med(own).toFixed(3) + ' ms (main thread ' + med(pairs.map(([c, b]) => c[4] - b[4])).toFixed(3) + '); CPU per connection ' + med(pairs.map(([c]) => +c[3])).toFixed(3) + ' ms, bare proxy ' + med(pairs.map(([, b]) => +b[3])).toFixed(3))
  const beyond = n === 'floor' ? [] : lines.filter((l) => l[2] === n && at(l[1], 'floor')).map((l) => l[3] - at(l[1], 'floor')[3])
  if (beyond.length > 0) console.log(n + ': beyond the floor by round ' + beyond.map((x) => x.toFixed(3)).join(' ') + ' -> median ' + med(beyond).toFixed(3) + ' ms')
}"

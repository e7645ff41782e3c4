#!/usr/bin/env bash
# HotStuff against PBFT: engines.sh BIN — ROUNDS times, alternating the engines, a fresh
# 4-validator `cairn testnet --mode M` (separate node processes, default config), then
# unlimited load for UNL s and 1,000 tx/s for FIX s, spread over the four nodes' RPCs.
# Prints one Markdown row per run.
set -u
BIN=$1; ROUNDS=${ROUNDS:-2}; UNL=${UNL:-60}; FIX=${FIX:-20}
ENGINES=${ENGINES:-"hotstuff pbft"}
PORT=${PORT:-27500}
row() { python3 - "$@" <<'PY'
import json,sys
engine,rate,dur,out=sys.argv[1:5]
try:
    r=json.loads(out); l=r["latency_ms"]
    print(f"| {engine} | {rate} | {dur} | {r['committed_tps']:.1f} | {l['p50']:.1f} / {l['p90']:.1f} / {l['p99']:.1f} | {r['committed']}/{r['submitted']} |", flush=True)
except Exception as e:
    print(f"| {engine} | {rate} | {dur} | FAILED {e} {out[:200]} |", flush=True)
PY
}
for round in $(seq 1 $ROUNDS); do for engine in $ENGINES; do
  d=${NET_DIR:-/tmp/cairn-engines-net}; rm -rf $d
  $BIN testnet --no-start --mode $engine --dir $d --base-port $PORT > /dev/null
  pids=()
  for i in 0 1 2 3; do
    $BIN node run --home $d/node$i > $d/node$i.log 2>&1 & pids+=($!)
  done
  # Past the double-sign watch of the first rounds, and a few blocks in.
  for i in $(seq 1 120); do
    h=$($BIN status --rpc http://127.0.0.1:$((PORT + 1)) --output json 2>/dev/null | python3 -c "import json,sys;print(json.load(sys.stdin)['height'])" 2>/dev/null)
    [ "${h:-0}" -ge 5 ] 2>/dev/null && break; sleep 0.5
  done
  urls=$(python3 -c "import json;print(','.join(n['rpc'] for n in json.load(open('$d/testnet.json'))['nodes']))")
  out=$($BIN bench tps --rpc $urls --key $d/faucet.key --duration $UNL --rate 0 --output json 2>/dev/null); row $engine 0 $UNL "$out"
  out=$($BIN bench tps --rpc $urls --key $d/faucet.key --duration $FIX --rate 1000 --output json 2>/dev/null); row $engine 1000 $FIX "$out"
  kill ${pids[@]} 2>/dev/null; wait 2>/dev/null; sleep 2
done; done

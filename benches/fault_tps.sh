#!/usr/bin/env bash
# Leader-election figures: fault_tps.sh BIN [RULES] — for each rule and each of healthy /
# hung (SIGSTOP) / killed (SIGKILL) node3: a fresh 4-validator testnet of separate
# `cairn node run` processes (not `cairn testnet`, whose supervisor stops every node when one
# exits), unlimited load for UNL s, then 1,000 tx/s for FIX s, load sent to nodes 0-2; then
# node3 comes back (SIGCONT, or started again) and the time until node0's status passes nobody
# over is printed. MODE=pbft runs a PBFT testnet (default hotstuff).
set -u
BIN=$1; RULES=${2:-"round-robin reputation"}; UNL=${UNL:-30}; FIX=${FIX:-20}
SCENARIOS=${SCENARIOS:-"healthy hung killed"}
PORT=${PORT:-27400}
row() { python3 - "$@" <<'PY'
import json,sys
rule,scen,rate,out=sys.argv[1:5]
try:
    r=json.loads(out); l=r["latency_ms"]
    print(f"| {rule} | {scen} | {rate} | {r['committed_tps']:.1f} | {l['p50']:.1f} / {l['p90']:.1f} / {l['p99']:.1f} | {r['committed']}/{r['submitted']} |", flush=True)
except Exception as e:
    print(f"| {rule} | {scen} | {rate} | FAILED {e} {out[:200]} |", flush=True)
PY
}
for rule in $RULES; do for scen in $SCENARIOS; do
  d=${NET_DIR:-/tmp/cairn-fault-net}; rm -rf $d
  $BIN testnet --no-start --dir $d --base-port $PORT --mode ${MODE:-hotstuff} --leader-election $rule > /dev/null
  pids=()
  for i in 0 1 2 3; do
    $BIN node run --home $d/node$i > $d/node$i.log 2>&1 & pids+=($!)
  done
  sleep 6
  urls=$(python3 -c "import json;print(','.join(n['rpc'] for n in json.load(open('$d/testnet.json'))['nodes'][:3]))")
  case $scen in hung) kill -STOP ${pids[3]};; killed) kill -9 ${pids[3]};; esac
  out=$($BIN bench tps --rpc $urls --key $d/faucet.key --duration $UNL --rate 0 --output json 2>/dev/null); row $rule $scen unlimited "$out"
  out=$($BIN bench tps --rpc $urls --key $d/faucet.key --duration $FIX --rate 1000 --output json 2>/dev/null); row $rule $scen 1000 "$out"
  if [ $scen != healthy ]; then
    case $scen in
      hung) kill -CONT ${pids[3]};;
      killed) $BIN node run --home $d/node3 >> $d/node3.log 2>&1 & pids[3]=$!;;
    esac
    t0=$(date +%s.%N)
    for i in $(seq 1 240); do
      po=$($BIN status --rpc http://127.0.0.1:$((PORT + 1)) --output json 2>/dev/null | python3 -c "import json,sys;s=json.load(sys.stdin);print(len(s.get('leader_election',{}).get('passed_over',[])))" 2>/dev/null)
      [ "$po" = 0 ] && break; sleep 0.5
    done
    echo "| $rule | $scen: back | passed over by node0 until $(python3 -c "print(round($(date +%s.%N)-$t0,1))") s after it returned |"
  fi
  kill ${pids[@]} 2>/dev/null; wait 2>/dev/null; sleep 2
done; done

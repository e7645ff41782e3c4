#!/usr/bin/env bash
# Leader-election figures: fault_tps.sh BIN [RULES] — for each rule and each of healthy /
# hung (SIGSTOP) / killed (SIGKILL) node3: fresh 4-validator testnet, unlimited for UNL s,
# then 1,000 tx/s for FIX s, load sent to nodes 0-2; for hung, SIGCONT afterwards and the
# time until node0's status passes nobody over and node3 has led a block.
set -u
BIN=$1; RULES=${2:-"round-robin reputation"}; UNL=${UNL:-30}; FIX=${FIX:-20}
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
for rule in $RULES; do for scen in healthy hung killed; do
  d=${NET_DIR:-/tmp/cairn-fault-net}; rm -rf $d
  $BIN testnet --dir $d --base-port 27400 --leader-election $rule > $d.log 2>&1 &
  tp=$!
  for i in $(seq 1 120); do [ -f $d/testnet.json ] && break; sleep 0.5; done
  sleep 5
  urls=$(python3 -c "import json;print(','.join(n['rpc'] for n in json.load(open('$d/testnet.json'))['nodes'][:3]))")
  n3=$(pgrep -f "node run --home $d/node3" | head -1)
  case $scen in hung) kill -STOP $n3;; killed) kill -9 $n3;; esac
  out=$($BIN bench tps --rpc $urls --key $d/faucet.key --duration $UNL --rate 0 --output json 2>/dev/null); row $rule $scen unlimited "$out"
  out=$($BIN bench tps --rpc $urls --key $d/faucet.key --duration $FIX --rate 1000 --output json 2>/dev/null); row $rule $scen 1000 "$out"
  if [ $scen = hung ]; then
    kill -CONT $n3; t0=$(date +%s.%N)
    for i in $(seq 1 120); do
      po=$($BIN status --rpc http://127.0.0.1:27401 --output json 2>/dev/null | python3 -c "import json,sys;s=json.load(sys.stdin);print(len(s.get('leader_election',{}).get('passed_over',[])))" 2>/dev/null)
      [ "$po" = 0 ] && break; sleep 0.5
    done
    echo "| $rule | hung: back after SIGCONT | passed over by node0 until $(python3 -c "print(round($(date +%s.%N)-$t0,1))") s |"
  fi
  kill -INT $tp; wait $tp 2>/dev/null; sleep 2
done; done

#!/bin/bash
# An upgrade appended to a live 4-validator testnet node by node (issue 18; RESULTS.md
# "Upgrades, second part"): each node stopped, `cairn upgrade schedule`, started again, 5 s
# apart; then the interval before each height's first commit on any node, the longest gaps and
# the interval at the upgrade's height. Usage: benches/rollout.sh [BASE_PORT] (default 27400).
set -euo pipefail
B=${CAIRN:-target/release/cairn}
PORT=${1:-27400}
D=$(mktemp -d)
trap 'for f in "$D"/node*.pid; do kill -TERM "$(cat "$f")" 2>/dev/null || true; done; rm -rf "$D"' EXIT
rpc="http://127.0.0.1:$((PORT + 1))"
height() { "$B" status --rpc "$rpc" --output json | python3 -c 'import json,sys;print(json.load(sys.stdin)["height"])'; }
"$B" testnet --no-start --dir "$D/tn" --base-port "$PORT" >/dev/null
start() { NO_COLOR=1 "$B" node run --home "$D/tn/node$1" >>"$D/node$1.log" 2>&1 & echo $! >"$D/node$1.pid"; }
stop() { kill -TERM "$(cat "$D/node$1.pid")"; while kill -0 "$(cat "$D/node$1.pid")" 2>/dev/null; do sleep 0.05; done; }
for i in 0 1 2 3; do start $i; done
sleep 15
at=$(( $(height) + 150 ))
echo "memo scheduled at height $at"
for i in 0 1 2 3; do
  stop $i
  t0=$(date +%s.%N)
  "$B" upgrade schedule --home "$D/tn/node$i" --name memo --height "$at" --version 3 >/dev/null
  echo "node $i: cairn upgrade schedule took $(python3 -c "print(round($(date +%s.%N) - $t0, 3))") s"
  start $i
  sleep 5
done
while [ "$(height)" -lt $((at + 10)) ]; do sleep 1; done
python3 - "$D" "$at" <<'PY'
import datetime, re, statistics, sys
d, at = sys.argv[1], int(sys.argv[2])
first = {}
for i in range(4):
    for line in open(f"{d}/node{i}.log"):
        m = re.search(r"^(\S+)Z\s+INFO cairn_node::hotstuff: committed height=(\d+)", line)
        if m:
            t = datetime.datetime.fromisoformat(m.group(1)).timestamp()
            h = int(m.group(2))
            first[h] = min(t, first.get(h, t))
gaps = sorted(((first[h] - first[h - 1]) * 1000, h) for h in first if h - 1 in first)
ms = [g for g, _ in gaps]
print(f"blocks {len(first)}: median {statistics.median(ms):.0f} ms, p99 {ms[int(len(ms) * .99)]:.0f} ms, max {ms[-1]:.0f} ms")
print("longest gaps (ms, height):", [(round(g), h) for g, h in gaps[-4:]])
print(f"block {at} (first under the upgrade): {(first[at] - first[at - 1]) * 1000:.0f} ms after {at - 1}")
PY

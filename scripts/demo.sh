#!/usr/bin/env bash
# The main job with embedded defaults, no cloud account:
#   1. synthesize a caller on a street and replay the recording through the speech gate;
#   2. place that call, in real time, through a real `callgate serve` whose Realtime model
#      is the local Realtime-protocol peer (answers each turn with a tone).
# Outputs land in out/: sample.wav/.csv/.png (the gate's view) and call.wav (the call).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
mkdir -p out
.venv/bin/callgate sample out/sample.wav --noise street --snr 10
.venv/bin/callgate analyze out/sample.wav --frames-csv out/sample.csv --plot out/sample.png "$@"

port=${DEMO_PORT:-18700}
peer_port=$((port + 1))
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
.venv/bin/callgate peer --port "$peer_port" >out/demo-peer.log 2>&1 &
pids+=($!)
PORT=$port TWILIO_VALIDATE_SIGNATURES=false \
OPENAI_WEBSOCKET_BASE_URL="ws://127.0.0.1:$peer_port/v1" OPENAI_BASE_URL="http://127.0.0.1:$peer_port/v1" \
    .venv/bin/callgate serve >out/demo-server.log 2>&1 &
pids+=($!)
.venv/bin/python - "$port" <<'PY'
import sys, time, httpx
for _ in range(200):
    try:
        if httpx.get(f"http://127.0.0.1:{sys.argv[1]}/healthz").status_code == 200:
            break
    except httpx.TransportError:
        time.sleep(0.05)
PY
echo
echo "== a live call through callgate serve (the server's log is out/demo-server.log) =="
.venv/bin/callgate call "http://127.0.0.1:$port" --wav out/sample.wav --tail-ms 3000 --out out/call.wav
grep -E "caller:|agent:|call ended" out/demo-server.log | sed 's/^.*callgate.call \[[^]]*\] /  server: /' || true

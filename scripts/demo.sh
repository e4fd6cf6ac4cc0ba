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
PORT=$port TWILIO_VALIDATE_SIGNATURES=false API_TOKEN=demo \
DATABASE_URL="sqlite+aiosqlite:///$PWD/out/demo-calls.db" \
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
echo
echo "== the stored call (GET /calls/{sid}, out/demo-calls.db) =="
.venv/bin/python - "$port" <<'PY'
import sys, httpx
base, auth = f"http://127.0.0.1:{sys.argv[1]}", {"Authorization": "Bearer demo"}
sid = httpx.get(f"{base}/calls", headers=auth).json()[0]["call_sid"]
record = httpx.get(f"{base}/calls/{sid}", headers=auth).json()
call, stats = record["call"], record["call"]["stats"]
print(f"  {sid}: {call['end_reason']}; audio sent {stats['audio_sent_s']:.1f} s, "
      f"withheld {stats['audio_withheld_s']:.1f} s (saved ${stats['est_cost_saved_usd']:.4f})")
for turn in record["turns"]:
    cut = " [interrupted]" if turn["interrupted"] else ""
    print(f"  {turn['speaker']:>6}: {turn['text']}{cut}")
for event in record["events"]:
    print(f"  event {event['kind']} at {event['at_ms'] / 1000:.2f} s: {event['detail']}")
PY

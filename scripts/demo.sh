#!/usr/bin/env bash
# The main job with the embedded default: no cloud account, nothing downloaded at run time.
#   1. make a sample recording (a caller on a street) and replay it through the speech gate;
#   2. start `callgate serve` on 127.0.0.1 with no OPENAI_API_KEY: the fallback pipeline on
#      local engines (faster-whisper tiny.en, the local form agent, the Piper voice);
#   3. place a call to it with `callgate call --turns`: a caller (Piper voice, on a phone
#      line, in street noise) who answers the agent's questions one by one;
#   4. print the live transcript, then the lead, the end reason, what the gate withheld,
#      and the paths of the stereo recording and the gate's timeline plot.
# Outputs land in out/. The call is stored in out/demo-calls.db like any other call.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
mkdir -p out
.venv/bin/callgate sample out/sample.wav --noise street --snr 10
.venv/bin/callgate analyze out/sample.wav --frames-csv out/sample.csv --plot out/sample.png "$@"

port=${DEMO_PORT:-18700}
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
rm -f out/demo-calls.db
env -u OPENAI_API_KEY -u USE_REALTIME_API PORT=$port TWILIO_VALIDATE_SIGNATURES=false API_TOKEN=demo \
    DATABASE_URL="sqlite+aiosqlite:///$PWD/out/demo-calls.db" TRANSCRIPTION_LANGUAGE=en \
    .venv/bin/callgate serve >out/demo-server.log 2>&1 &
pids+=($!)
.venv/bin/python - "$port" <<'PY'
import sys, time, httpx
for _ in range(600):  # the speech models load before the server accepts calls
    try:
        if httpx.get(f"http://127.0.0.1:{sys.argv[1]}/healthz").status_code == 200:
            sys.exit(0)
    except httpx.TransportError:
        time.sleep(0.1)
sys.exit("callgate serve did not start; see out/demo-server.log")
PY
echo
grep -m1 "calls run on" out/demo-server.log | sed 's/^.*\] //' || true
echo "== a live call to callgate serve (the server's log is out/demo-server.log) =="
.venv/bin/callgate call "http://127.0.0.1:$port" --turns --voice piper --noise street --snr 15 \
    --api-token demo --out out/call.wav --plot out/call.png \
    --say "Hi. My name is Dana Cohen." \
    --say "My phone number is two one two, five five five, two three six eight." \
    --say "Yes, that's right." \
    --say "My roof is leaking." \
    --say "No, thank you." \
    --say "Tomorrow at ten in the morning."

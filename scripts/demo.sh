#!/usr/bin/env bash
# The main job with embedded defaults, no cloud account: synthesize a caller on a street,
# replay the call through the speech gate, and show what the model would receive.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
mkdir -p out
.venv/bin/callgate sample out/sample.wav --noise street --snr 10
.venv/bin/callgate analyze out/sample.wav --frames-csv out/sample.csv --plot out/sample.png "$@"

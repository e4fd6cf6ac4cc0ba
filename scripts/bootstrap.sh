#!/usr/bin/env bash
# Set up everything callgate needs on a fresh Debian/Ubuntu machine: system packages
# (when run as root), a virtual env in .venv, and the Python dependencies. Idempotent:
# a second run with an unchanged pyproject.toml does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(espeak-ng)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "bootstrap: please install ${missing[*]} (apt-get install ${missing[*]}); continuing" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.callgate-deps
want=$(sha256sum pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "bootstrap: installing Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev,bench,confirmer]'
  # silero-vad declares torch as a hard dependency; callgate only reads its ONNX file.
  .venv/bin/python -m pip install -q --no-deps 'silero-vad==6.2.3'
  # pipecat-ai ships the Smart Turn v3.2 end-of-turn ONNX (END_OF_TURN_MODEL=smart_turn);
  # callgate only reads that file, so none of pipecat's dependencies are needed.
  .venv/bin/python -m pip install -q --no-deps 'pipecat-ai==1.14.0'
  echo "$want" >"$stamp"
fi
# The gate's numba kernels: compiled once per checkout (about 20 s), then read from
# numba's cache beside the modules (a fraction of a second), so no command waits for them.
.venv/bin/python -c 'from callgate.audio.gate import compile_gate_kernels as c; c()'

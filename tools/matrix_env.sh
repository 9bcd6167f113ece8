#!/usr/bin/env bash
# Build (or reuse) a separate virtualenv with Meta FAIR's Matrix and Ray, for the
# `peers_matrix` benchmark section (tools/bench/peer_matrix.py).
#
#   bash tools/matrix_env.sh [DIR]      # default: ~/.cache/slurmgen/matrix-venv
#
# Matrix drives its agents through Ray actors and pins its own dependency set
# (grpcio==1.70.0, openai~=1.90, aiohttp~=3.12, ray[default,serve]), so it is kept
# apart from slurmgen's venv. Nothing from Matrix is imported by slurmgen: the bench
# runs DIR/bin/python -m matrix.agents.p2p_agents (its documented Hydra entry point).
#
# What it does:
#   * pip install fair-matrix[agent]==0.2.6 ray[default,serve]==2.55.1 submitit
#     (`agent` brings hydra-core/langgraph for the p2p agents). Not Matrix's `ray`
#     extra: besides ray and submitit it adds boto3, s3fs, google-genai, datasketch,
#     iopath, which nothing on this path imports, and its s3fs/aiobotocore pins send
#     pip backtracking through old aiobotocore sdists for many minutes;
#   * idempotent: if DIR/bin/python already imports matrix.agents.p2p_agents and
#     ray.serve at the pinned versions, nothing is done. Concurrent callers are
#     serialised with flock on DIR.lock.
# Exit codes: 0 ready, 1 build failed (e.g. no package index reachable).
set -euo pipefail

DIR="${1:-${SLURMGEN_MATRIX_VENV:-$HOME/.cache/slurmgen/matrix-venv}}"
PYTHON="${PYTHON:-python3}"
MATRIX_VERSION="${MATRIX_VERSION:-0.2.6}"
RAY_VERSION="${RAY_VERSION:-2.55.1}"

ready() {
    [ -x "$DIR/bin/python" ] && MV="$MATRIX_VERSION" RV="$RAY_VERSION" "$DIR/bin/python" - <<'EOF2' >/dev/null 2>&1
import importlib.metadata as md, os, sys
import ray, ray.serve  # noqa: F401
import matrix.agents.p2p_agents  # noqa: F401
ok = md.version("fair-matrix") == os.environ["MV"] and ray.__version__ == os.environ["RV"]
sys.exit(0 if ok else 1)
EOF2
}

mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
flock 9

if ready; then
    echo "matrix_env: $DIR is ready (nothing to do)"
    exit 0
fi

# pip, minus the warnings some machines' configs produce for every package
pip() {
    "$DIR/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

start=$(date +%s)
echo "matrix_env: building $DIR (fair-matrix $MATRIX_VERSION, ray $RAY_VERSION; ~830 MB venv, ~2.5 min)"
[ -x "$DIR/bin/python" ] || "$PYTHON" -m venv "$DIR"
pip install -q --upgrade pip
pip install -q "fair-matrix[agent]==$MATRIX_VERSION" "ray[default,serve]==$RAY_VERSION" "submitit>=1.5.2"

if ! ready; then
    echo "matrix_env: $DIR was built but cannot import matrix.agents.p2p_agents/ray.serve at the pinned versions; see the pip output above" >&2
    exit 1
fi
echo "matrix_env: $DIR ready in $(( $(date +%s) - start )) s"

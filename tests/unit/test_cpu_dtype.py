"""vLLM on a CPU without bf16: float32 unless a dtype is given, bf16 refused before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from slurmgen.errors import ConfigError
from slurmgen.exitcodes import Exit
from slurmgen.run.commands import cpu_dtype, cpu_without_bf16

AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_cpu_flags_and_gpu_devices_decide(tmp_path: Path):
    info, dev = tmp_path / "cpuinfo", tmp_path / "dev"
    dev.mkdir()
    info.write_text(AVX2)
    assert cpu_without_bf16(info, dev)
    info.write_text(SAPPHIRE)
    assert not cpu_without_bf16(info, dev)
    info.write_text(AVX2)
    (dev / "nvidia0").touch()  # a GPU serves the model, the CPU's flags do not matter
    assert not cpu_without_bf16(info, dev)


def test_float32_added_given_kept_bf16_refused():
    assert cpu_dtype(["--enforce-eager"], bf16_missing=True) == ["--dtype", "float32"]
    assert cpu_dtype(["--dtype", "float32"], bf16_missing=True) == []
    assert cpu_dtype(["--dtype=auto"], bf16_missing=True) == []
    assert cpu_dtype([], bf16_missing=False) == []
    assert cpu_dtype(["--dtype", "bfloat16"], bf16_missing=False) == []
    for args in (["--dtype", "bfloat16"], ["--dtype=bfloat16", "--enforce-eager"]):
        with pytest.raises(ConfigError, match=r"llms.big.extra_args has --dtype bfloat16.*use --dtype float32"):
            cpu_dtype(args, "llms.big", bf16_missing=True)


@pytest.mark.skipif(not cpu_without_bf16(), reason="this machine's CPU (or GPU) does bf16")
def test_a_bf16_vllm_run_on_this_cpu_is_refused_before_anything_starts(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "slurmgen", "workflow=nr", "llm.backend=vllm",
                           f"llm.model_path={tmp_path}", "llm.extra_args=[--dtype,bfloat16]",
                           f"run.dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == Exit.REFUSED, proc.stderr
    assert "--dtype bfloat16" in proc.stderr and "no bf16 instructions" in proc.stderr
    assert not (tmp_path / "run" / "logs" / "llm-0.log").exists()

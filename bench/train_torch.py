"""PyTorch side of bench/train.sh: transformers' Qwen2ForCausalLM (f32, SDPA), one packed row of
TOKENS tokens in DOCS documents given as position ids plus a 4-D block-diagonal causal mask,
labels on odd positions, STEPS steps of forward, backward, clip_grad_norm_ and AdamW (the
first a warm-up). Same row as crates/trajforge-train/examples/train_step_bench.rs. Prints one
JSON line.

usage: train_torch.py tiny|0.5b-2l TOKENS STEPS [DOCS]
"""

import json
import statistics
import sys
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

SHAPES = {
    "tiny": dict(vocab_size=151936, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                 num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True),
    "0.5b-2l": dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=2,
                    num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
}


def main():
    shape, tokens, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    docs = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    torch.set_num_threads(int(__import__("os").environ.get("THREADS", "2")))
    torch.manual_seed(0)
    config = Qwen2Config(rope_theta=1e6, rms_norm_eps=1e-6, max_position_embeddings=32768, **SHAPES[shape])
    model = Qwen2ForCausalLM._from_config(config, torch_dtype=torch.float32, attn_implementation="sdpa")
    model.train()
    vocab = config.vocab_size
    base = tokens // docs
    lens = [base] * docs
    lens[-1] += tokens - base * docs
    ids = torch.tensor([[(i * 7919) % vocab for i in range(tokens)]])
    pos = torch.cat([torch.arange(n) for n in lens])[None]
    doc = torch.cat([torch.full((n,), d) for d, n in enumerate(lens)])
    allowed = (doc[:, None] == doc[None, :]) & torch.ones(tokens, tokens, dtype=torch.bool).tril()
    mask = torch.zeros(1, 1, tokens, tokens).masked_fill_(~allowed, torch.finfo(torch.float32).min)
    labels = ids.clone()
    labels[0, 0::2] = -100
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False)
    times, loss = [], None
    for _ in range(steps):
        t = time.perf_counter()
        opt.zero_grad()
        out = model(input_ids=ids, position_ids=pos, attention_mask=mask, labels=labels, use_cache=False)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t)
        loss = out.loss.item()
    median = statistics.median(times[1:])
    print(json.dumps({"engine": "pytorch", "shape": shape, "tokens": tokens, "docs": docs, "steps": steps,
                      "median_step_s": median, "tokens_per_s": tokens / median, "last_loss": loss,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()

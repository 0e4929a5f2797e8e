"""PyTorch reference for the trainer (tests/e2e/train.rs).

transformers' Qwen2ForCausalLM, f32, eager attention, loads the model folder trajforge wrote
and runs the packed batch the test gives: one row of several documents, as position ids that
restart per document and an explicit 4-D additive block-diagonal causal mask (transformers'
own packed-sequence detection is not used: it is silently off with use_cache=True). Labels are
the next tokens with loss_mask = 1 inside the same document, -100 elsewhere, so the loss is the
mean over supervised tokens, as trajforge defines it. It writes the loss and every parameter's
gradient, then takes the configured number of optimizer steps (torch.optim.AdamW, decay off
for norms and biases, clip_grad_norm_, transformers' cosine schedule with warm-up and floor)
and writes each step's unclipped gradients and the weights after the steps.

usage: train_parity.py MODEL_DIR BATCH_JSON OUT_DIR
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import Qwen2ForCausalLM
from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup


def packed_inputs(batch):
    ids = torch.tensor([batch["ids"]], dtype=torch.long)
    pos = torch.tensor([batch["positions"]], dtype=torch.long)
    n = ids.shape[1]
    doc = torch.empty(n, dtype=torch.long)
    starts = set()
    start = 0
    for d, length in enumerate(batch["seq_lens"]):
        doc[start : start + length] = d
        starts.add(start)
        start += length
    same_doc = doc[:, None] == doc[None, :]
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    allowed = same_doc & causal
    mask = torch.zeros(1, 1, n, n, dtype=torch.float32)
    mask.masked_fill_(~allowed, torch.finfo(torch.float32).min)
    labels = ids.clone()
    for t in range(n):
        if batch["mask"][t] != 1 or t in starts:
            labels[0, t] = -100
    return ids, pos, mask, labels


def loss_of(model, inputs):
    ids, pos, mask, labels = inputs
    out = model(input_ids=ids, position_ids=pos, attention_mask=mask, labels=labels, use_cache=False)
    return out.loss


def main():
    model_dir, batch_path, out_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    batch = json.loads(batch_path.read_text())
    torch.manual_seed(0)
    model = Qwen2ForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.train()
    inputs = packed_inputs(batch)

    loss = loss_of(model, inputs)
    loss.backward()
    grads = {name: p.grad.detach().clone().contiguous() for name, p in model.named_parameters()}
    save_file(grads, str(out_dir / "grads.safetensors"))
    result = {"loss": loss.item(), "step_losses": []}

    o = batch["optimizer"]
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith(".bias") or name.endswith("norm.weight") else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], foreach=False,
    )
    sched = get_cosine_with_min_lr_schedule_with_warmup(
        opt, num_warmup_steps=o["warmup_steps"], num_training_steps=o["total_steps"], min_lr=o["min_lr"]
    )
    for step in range(o["steps"]):
        opt.zero_grad()
        loss = loss_of(model, inputs)
        loss.backward()
        raw = {name: p.grad.detach().clone().contiguous() for name, p in model.named_parameters()}
        save_file(raw, str(out_dir / f"grads-step{step}.safetensors"))
        torch.nn.utils.clip_grad_norm_(model.parameters(), o["max_grad_norm"])
        result["step_losses"].append(loss.item())
        opt.step()
        sched.step()
    after = {name: p.detach().clone().contiguous() for name, p in model.named_parameters()}
    save_file(after, str(out_dir / "after.safetensors"))
    (out_dir / "result.json").write_text(json.dumps(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

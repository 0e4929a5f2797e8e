"""Model folders between trajforge and transformers (tests/train/models.rs).

  hf_models.py loss MODEL_DIR ROW_JSON               transformers' loss of a folder trajforge wrote
  hf_models.py save MODEL_DIR TIE SHARD ROW_JSON     a random Qwen2 saved by save_pretrained (tied or
                                                     not, sharded into a safetensors index or not), and its loss

The loss is transformers' Qwen2ForCausalLM on the packed row (position ids, 4-D block-diagonal
mask, labels -100 outside supervised next tokens), as train_parity.py builds it. Prints JSON.
"""

import json
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

sys.path.insert(0, str(Path(__file__).parent))
from train_parity import loss_of, packed_inputs  # noqa: E402


def load_and_score(model_dir, row):
    model = Qwen2ForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        return loss_of(model, packed_inputs(row)).item()


def main():
    mode, model_dir = sys.argv[1], sys.argv[2]
    if mode == "loss":
        row = json.loads(Path(sys.argv[3]).read_text())
        result = {"loss": load_and_score(model_dir, row)}
        if (Path(model_dir) / "tokenizer.json").exists():
            tok = AutoTokenizer.from_pretrained(model_dir)
            result["tokenizer_vocab"] = len(tok)
        print(json.dumps(result))
    elif mode == "save":
        tie, shard = sys.argv[3] == "1", sys.argv[4] == "1"
        row = json.loads(Path(sys.argv[5]).read_text())
        torch.manual_seed(1234)
        config = Qwen2Config(
            vocab_size=211, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
            num_attention_heads=6, num_key_value_heads=2, rope_theta=10000.0, rms_norm_eps=1e-6,
            tie_word_embeddings=tie, max_position_embeddings=512,
        )
        model = Qwen2ForCausalLM._from_config(config, torch_dtype=torch.float32)
        # Non-zero biases and norms, as a trained model has them.
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith(".bias") or name.endswith("norm.weight"):
                    p.add_(torch.randn_like(p) * 0.05)
        model.save_pretrained(model_dir, safe_serialization=True, max_shard_size="40KB" if shard else "5GB")
        print(json.dumps({"loss": load_and_score(model_dir, row)}))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

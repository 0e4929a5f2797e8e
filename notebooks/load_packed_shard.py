"""Load a trajforge packed shard row into torch tensors, with its block-diagonal causal mask.
Usage: python load_packed_shard.py OUT/shards/shard-00000.parquet [ROW]   (needs pyarrow, torch)"""
import sys

import pyarrow.parquet as pq
import torch

row = pq.read_table(sys.argv[1]).slice(int(sys.argv[2]) if len(sys.argv) > 2 else 0, 1).to_pylist()[0]
input_ids = torch.tensor(row["input_ids"], dtype=torch.long)
labels = input_ids.masked_fill(torch.tensor(row["loss_mask"]) == 0, -100)  # loss on assistant tokens only
position_ids = torch.tensor(row["position_ids"], dtype=torch.long)  # restart at 0 per document
cu_seqlens = torch.tensor(row["cu_seqlens"], dtype=torch.int32)  # for flash-attn varlen kernels
doc = torch.repeat_interleave(torch.arange(len(row["seq_lens"])), torch.tensor(row["seq_lens"]))
n = len(input_ids)
attention_mask = (doc[:, None] == doc[None, :]) & torch.ones(n, n, dtype=torch.bool).tril()
assert int(cu_seqlens[-1]) == n and bool((position_ids[cu_seqlens[:-1].long()] == 0).all())
print(f"{n} tokens, {len(row['seq_lens'])} documents, {int((labels != -100).sum())} supervised")

"""Python side of bench/tokenize.sh, on the same rows as trajforge's tokenize_bench.

Usage: python3 tokenize_transformers.py TOKENIZER_DIR WORK_DIR
Reads WORK_DIR/chat.jsonl (messages + tools), WORK_DIR/rendered.jsonl (rendered texts) and
WORK_DIR/lengths.txt; prints one JSON line per measurement:
  - transformers apply_chat_template(messages, tools=tools, tokenize=True) (fast tokenizer),
  - the fast tokenizer's encode of the already rendered text,
  - a simple Python best-fit-decreasing packer (bisect over free space) on the same lengths
    repeated to 300,000 samples at 32k, as trajforge's packer is measured.
"""
import bisect
import json
import sys
import time

from transformers import AutoTokenizer


def report(what, t0, samples, tokens=None, extra=None):
    secs = time.perf_counter() - t0
    row = {"what": what, "samples": samples, "seconds": secs, "samples_per_s": samples / secs}
    if tokens is not None:
        row.update(tokens=tokens, tokens_per_s=tokens / secs)
    row.update(extra or {})
    print(json.dumps(row), flush=True)


def bfd(lengths, capacity):
    """Best-fit decreasing: each sample into the open row with the least room that holds it."""
    rooms = []  # sorted (room, row index)
    rows = 0
    for n in sorted(lengths, reverse=True):
        i = bisect.bisect_left(rooms, (n, -1))
        if i < len(rooms):
            room, row = rooms.pop(i)
        else:
            room, row = capacity, rows
            rows += 1
        bisect.insort(rooms, (room - n, row))
    return rows


def main():
    tok = AutoTokenizer.from_pretrained(sys.argv[1])
    work = sys.argv[2]
    chats = [json.loads(line) for line in open(f"{work}/chat.jsonl", encoding="utf-8")]
    texts = [json.loads(line) for line in open(f"{work}/rendered.jsonl", encoding="utf-8")]

    t0 = time.perf_counter()
    tokens = sum(len(tok.apply_chat_template(c["messages"], tools=c["tools"], tokenize=True)) for c in chats)
    report("transformers apply_chat_template(tokenize=True)", t0, len(chats), tokens)

    t0 = time.perf_counter()
    tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
    report("transformers fast tokenizer encode of the rendered text", t0, len(texts), tokens)

    lengths = [int(x) for x in open(f"{work}/lengths.txt")]
    lengths = [n for n in lengths if n <= 32768]
    corpus = (lengths * (300000 // max(1, len(lengths)) + 1))[:300000]
    t0 = time.perf_counter()
    rows = bfd(corpus, 32768)
    report("python BFD (bisect), whole corpus at once", t0, len(corpus),
           extra={"rows": rows, "fill": sum(corpus) / (rows * 32768)})


if __name__ == "__main__":
    main()

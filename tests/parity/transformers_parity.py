"""Token-exact parity of trajforge with Hugging Face transformers.

Usage: python3 transformers_parity.py TOKENIZER_DIR ROWS.jsonl

Each line of ROWS.jsonl is {"id", "messages", "tools", "ids"}: the conversation as OpenAI
messages (tool-call arguments as objects), the tools passed as `tools=` (or null) and the ids
trajforge produced. Prints one JSON line {"rows", "mismatches": [...]} and exits 1 on any
mismatch.
"""
import json
import sys

from transformers import AutoTokenizer


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def main():
    tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
    rows, mismatches = 0, []
    with open(sys.argv[2], encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            rows += 1
            theirs = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=True)
            ours = row["ids"]
            if list(theirs) != ours:
                at = first_difference(ours, theirs)
                mismatches.append({
                    "id": row["id"], "at": at, "ours_len": len(ours), "theirs_len": len(theirs),
                    "ours": tokenizer.decode(ours[max(0, at - 5):at + 5]),
                    "theirs": tokenizer.decode(list(theirs)[max(0, at - 5):at + 5]),
                })
    print(json.dumps({"rows": rows, "mismatches": mismatches}))
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()

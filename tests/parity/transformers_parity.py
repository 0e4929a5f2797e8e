"""Token-exact parity of trajforge with Hugging Face transformers.

Usage: python3 transformers_parity.py TOKENIZER_DIR ROWS.jsonl MARKED_TEMPLATE

Each line of ROWS.jsonl is {"id", "messages", "tools", "ids", "mask"}: the conversation as OpenAI
messages (tool-call arguments as objects), the tools passed as `tools=` (or null), and the ids and
loss mask trajforge produced. The ids are compared with `apply_chat_template(messages,
tools=tools)` using the tokenizer's own template; the mask with the `assistant_masks` that
`return_assistant_tokens_mask=True` derives from MARKED_TEMPLATE, the same template with
`{% generation %}` markers around the assistant turns (its ids must match too, which shows it
renders the same text). Prints one JSON line {"rows", "masked_tokens", "mismatches": [...]} and
exits 1 on any mismatch.
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
    with open(sys.argv[3], encoding="utf-8") as f:
        marked = f.read()
    rows, masked_tokens, mismatches = 0, 0, []
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
                continue
            reference = tokenizer.apply_chat_template(
                row["messages"], tools=row["tools"], chat_template=marked, tokenize=True,
                return_dict=True, return_assistant_tokens_mask=True)
            if list(reference["input_ids"]) != ours:
                mismatches.append({"id": row["id"], "what": "marked template renders other ids"})
                continue
            mask = list(reference["assistant_masks"])
            masked_tokens += sum(mask)
            if mask != row["mask"]:
                at = first_difference(row["mask"], mask)
                mismatches.append({
                    "id": row["id"], "what": "loss mask", "at": at,
                    "ours_mask": row["mask"][max(0, at - 5):at + 5],
                    "theirs_mask": mask[max(0, at - 5):at + 5],
                    "text": tokenizer.decode(ours[max(0, at - 5):at + 5]),
                })
    print(json.dumps({"rows": rows, "masked_tokens": masked_tokens, "mismatches": mismatches}))
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()

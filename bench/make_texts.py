"""Deterministic trajectory-sized texts for the MinHash benchmark (JSON Lines)."""
import json, random, sys

out, count, words = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
vocab = [f"tok{i}" for i in range(20000)] + ["def", "return", "self", "import", "if", "for", "in", "None"]
with open(out, "w") as f:
    for _ in range(count):
        f.write(json.dumps({"text": " ".join(rng.choice(vocab) for _ in range(words))}) + "\n")

"""datasketch MinHash on the same texts as examples/minhash_bench.rs: word n-gram shingles,
same num_perm, one core. Prints one JSON line."""
import json, sys, time
from datasketch import MinHash

path, num_perm, ngram = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
texts = [json.loads(l)["text"] for l in open(path)]
start = time.perf_counter()
for t in texts:
    words = t.split()
    n = min(ngram, len(words))
    m = MinHash(num_perm=num_perm)
    m.update_batch([" ".join(words[i:i + n]).encode() for i in range(len(words) - n + 1)])
secs = time.perf_counter() - start
size = sum(len(t.encode()) for t in texts)
print(json.dumps({"impl": "datasketch", "texts": len(texts), "num_perm": num_perm, "ngram": ngram,
                  "seconds": secs, "signatures_per_second": len(texts) / secs,
                  "mb_per_second": size / 1e6 / secs}))

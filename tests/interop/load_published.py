"""Loads a dataset written by `trajforge publish` the two ways Hugging Face users do and checks
that every config comes back with the features and row counts its card declares.

usage: python3 load_published.py DATASET_DIR
Prints one line per config; exits non-zero on the first mismatch.
"""

import hashlib
import os
import sys

import datasets
import pyarrow.parquet as pq
import yaml
from datasets import Features, load_dataset


def front_matter(path):
    text = open(path, encoding="utf-8").read()
    assert text.startswith("---\n"), "README.md has no YAML front matter"
    return yaml.safe_load(text.split("---\n")[1])


def check_checksums(root):
    listed = {}
    for line in open(os.path.join(root, "SHA256SUMS"), encoding="utf-8"):
        digest, name = line.rstrip("\n").split("  ", 1)
        listed[name] = digest
    on_disk = set()
    for folder, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(folder, f), root)
            if rel != "SHA256SUMS":
                on_disk.add(rel)
    assert on_disk == set(listed), f"SHA256SUMS lists {sorted(listed)}, disk has {sorted(on_disk)}"
    for name, digest in listed.items():
        actual = hashlib.sha256(open(os.path.join(root, name), "rb").read()).hexdigest()
        assert actual == digest, f"{name}: sha256 {actual} != {digest}"


def main(root):
    card = front_matter(os.path.join(root, "README.md"))
    check_checksums(root)
    infos = {i["config_name"]: i for i in card["dataset_info"]}
    configs = [c["config_name"] for c in card["configs"]]
    assert configs and set(configs) == set(infos), (configs, sorted(infos))
    assert card["license"], "no license declared"
    for config in configs:
        info = infos[config]
        declared = Features._from_yaml_list(info["features"])
        files = sorted(
            os.path.join(root, "data", config, f)
            for f in os.listdir(os.path.join(root, "data", config))
        )
        from_parquet = Features.from_arrow_schema(pq.read_schema(files[0]))
        assert declared == from_parquet, f"{config}: card features differ from the Parquet schema"
        rows = info["splits"][0]["num_examples"]
        assert rows == sum(pq.read_metadata(f).num_rows for f in files), f"{config}: row count"
        by_dir = load_dataset("parquet", data_dir=os.path.join(root, "data", config), split="train")
        by_card = load_dataset(root, config, split="train")
        for how, ds in (("parquet data_dir", by_dir), ("dataset folder", by_card)):
            assert ds.features == declared, f"{config} via {how}: {ds.features} != {declared}"
            assert ds.num_rows == rows, f"{config} via {how}: {ds.num_rows} rows, card says {rows}"
        assert by_dir[0] == by_card[0], f"{config}: first rows differ between the two loads"
        print(f"{config}: {rows} rows, {len(declared)} features, {len(files)} file(s): ok")
    default = load_dataset(root, split="train")
    assert default.num_rows == infos[configs[0]]["splits"][0]["num_examples"], "default config"
    print(f"datasets {datasets.__version__}: all {len(configs)} configs load with the declared features")


if __name__ == "__main__":
    main(sys.argv[1])

"""Execute every notebook in this folder top to bottom on the bundled samples, with nbclient.

usage: python3 notebooks/run_notebooks.py TRAJFORGE_BINARY WORK_DIR

Prepares what the notebooks read — the quickstart run (TRAJFORGE_RUN) and ZERO / HERO ingest
outputs of the synthetic samples (TRAJFORGE_ZERO, TRAJFORGE_HERO) — under WORK_DIR, runs each
notebook in a fresh kernel, saves the executed copy to WORK_DIR/executed/ and exits non-zero on
the first cell that raises (the notebooks assert what they show).
"""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def trajforge(binary, *args):
    subprocess.run([binary, "--quiet", *args], check=True)


def prepare(binary, work):
    run = work / "quickstart"
    trajforge(binary, "run", str(REPO / "pipelines/quickstart.yaml"), "--out", str(run))
    env = {"TRAJFORGE_RUN": str(run)}
    for stage in ("zero", "hero"):
        out = work / f"{stage}-ingest"
        trajforge(binary, "ingest", str(REPO / f"data-samples/synthetic/{stage}.parquet"),
                  "--stage", stage, "--out", str(out))
        env[f"TRAJFORGE_{stage.upper()}"] = str(out)
    return env


def main(binary, work):
    work = Path(work).resolve()
    (work / "executed").mkdir(parents=True, exist_ok=True)
    os.environ.update(prepare(binary, work))
    notebooks = sorted(HERE.glob("*.ipynb"))
    assert notebooks, f"no notebooks in {HERE}"
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(HERE)}})
        client.execute()
        nbformat.write(nb, work / "executed" / path.name)
        cells = sum(1 for c in nb.cells if c.cell_type == "code")
        print(f"{path.name}: {cells} code cells ran")
    print(f"all {len(notebooks)} notebooks ran")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""dnabert2 pretrain as a Snakemake wrapper; meta.yaml documents its named input, output and params."""

import sys
from pathlib import Path

# The package of the checkout this wrapper lies in (wrappers/dnabert2/pretrain/ → its root), as the
# workflow's own rules run it.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from dnabert2.wrappers import run  # noqa: E402

run(snakemake, "pretrain")  # noqa: F821 (Snakemake defines it)

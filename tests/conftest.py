import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# Without a GPU the Triton kernels run in Triton's interpreter, on CPU tensors. The switch is read
# when a kernel is defined, so it is set before any test imports dnabert2.kernels.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
GENOMES = DATA / "genomes"

if not DATA.is_dir():
    pytest.exit(f"the tests read real data from the shared data set, expected at {DATA}", returncode=4)


@pytest.fixture(scope="session")
def data() -> Path:
    return DATA


def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """Run `python -m dnabert2 ARGS` as a user would, capturing its output."""
    return subprocess.run([sys.executable, "-m", "dnabert2", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def assert_user_error(result: subprocess.CompletedProcess, *words: str) -> None:
    """A bad-input failure: non-zero exit, one line on stderr naming the problem, no traceback."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("dnabert2"), errors[0]
    for word in words:
        assert word in errors[0], errors[0]


@pytest.fixture(scope="session")
def ce1pct(tmp_path_factory):
    """The C. elegans ce1pct genome as indexed bgzip, as `dnabert2 download` writes it."""
    from dnabert2.sequences import write_bgzf_fasta

    path = tmp_path_factory.mktemp("ce1pct") / "ce1pct.fa.gz"
    write_bgzf_fasta(GENOMES / "ce1pct.fa.gz", path)
    return path

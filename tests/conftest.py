import json
import os
import signal
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
# ../shared beside the clone, or where DNABERT2_SHARED says (the GPU machine has no ../shared:
# bench/gpu.sh carries the few files its tests read).
SHARED = Path(os.environ.get("DNABERT2_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
GENOMES = DATA / "genomes"
TOKENIZER = DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"

if not DATA.is_dir():
    pytest.exit(f"the tests read real data from the shared data set, expected at {DATA}", returncode=4)


@pytest.fixture(scope="session")
def data() -> Path:
    return DATA


def _unheard(signum, frame):
    """What this suite was started ignoring, it goes on ignoring (see below)."""


@pytest.fixture(autouse=True, scope="session")
def stops_heard_as_from_a_terminal():
    """The commands the tests start hear Ctrl-C and SIGHUP, as from a terminal: a suite started in the
    background by a non-interactive shell (`cmd &`, as CI harnesses do) or under nohup would pass those
    signals on ignored, and a command keeps ignoring what it was started ignoring (as nohup asks). A
    Python handler, unlike SIG_IGN, is not inherited: each program started gets the default."""
    ignored = [signum for signum in (signal.SIGINT, signal.SIGHUP) if signal.getsignal(signum) is signal.SIG_IGN]
    for signum in ignored:
        signal.signal(signum, _unheard)
    yield
    for signum in ignored:
        signal.signal(signum, signal.SIG_IGN)


def without_bases(bam: Path, out: Path) -> Path:
    """A copy of `bam` whose alignments keep their CIGARs but store no read bases (SEQ '*'), as some
    pipelines write them to save space; indexed."""
    import pysam

    with pysam.AlignmentFile(str(bam)) as source, pysam.AlignmentFile(str(out), "wb", template=source) as sink:
        for read in source:
            read.query_sequence = None
            sink.write(read)
    pysam.index(str(out))
    return out


def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """Run `python -m dnabert2 ARGS` as a user would, capturing its output."""
    return subprocess.run([sys.executable, "-m", "dnabert2", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def run_patched(patch: str, *args) -> subprocess.CompletedProcess:
    """Run `dnabert2 ARGS` in a process where the Python statements `patch` ran first, with os, signal and
    sys imported: to stop it at a chosen point, as os.kill(os.getpid(), signal.SIGTERM) in a function
    the patch wraps."""
    script = f"import os, signal, sys\n{patch}\nfrom dnabert2 import cli\nsys.exit(cli.main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True)


def assert_stopped(result: subprocess.CompletedProcess, command: str, signum: int) -> None:
    """A stopped run: exit 128 + the signal, its last line saying so, no traceback."""
    assert result.returncode == 128 + signum, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    word = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}[signum]
    assert result.stderr.splitlines()[-1] == f"dnabert2 {command}: {word}", result.stderr


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
    from dnabert2.sequences import write_indexed_fasta

    path = tmp_path_factory.mktemp("ce1pct") / "ce1pct.fa.gz"
    write_indexed_fasta(GENOMES / "ce1pct.fa.gz", path)
    return path


@pytest.fixture(scope="session")
def base(tmp_path_factory):
    """A tiny masked LM with random weights and the released tokenizer: a model folder for the
    mechanics of fine-tuning, embedding and loading, not for biology."""
    from dnabert2.model import build_model, preset, save_model
    from dnabert2.tokenizer import load_tokenizer

    torch.manual_seed(0)
    return save_model(build_model(preset("tiny"), "mlm"), tmp_path_factory.mktemp("base") / "tiny",
                      load_tokenizer(TOKENIZER))


CORE, FLANK = 1000, 100  # the dense task of the fixtures below


@pytest.fixture(scope="session")
def dense_task(tmp_path_factory, ce1pct):
    """The splice sites of the C. elegans example at every base: test contig IV, dev V."""
    out = tmp_path_factory.mktemp("dense") / "splice"
    result = run_cli("tasks", "splice", "--dense", "--genome", ce1pct, "--annotation", GENOMES / "ce1pct.gff3.gz",
                     "--out", out, "--core", CORE, "--flank", FLANK, "--test-contigs", "IV", "--dev-contigs", "V")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def cnn(dense_task, tmp_path_factory):
    """The SpliceAI-style CNN trained two epochs on the dense task: it learns real splice sites."""
    out = tmp_path_factory.mktemp("cnn") / "cnn"
    result = run_cli("cnn", "--data", dense_task, "--out", out, "--epochs", 2, "--batch-size", 8, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    (out.parent / "stderr.txt").write_text(result.stderr)  # for the tests of what it said
    return out


def scan_classifier(folder, window: int, task: str = "splice", labels=("neither", "donor", "acceptor")):
    """A random tiny classifier whose logits are rescaled to mean 0, sd 2 over real windows, so that
    its probabilities spread over (0, 1) rather than sitting near one value."""
    from dnabert2.model import build_model, preset, save_model
    from dnabert2.sequences import Fasta
    from dnabert2.tokenizer import load_tokenizer

    torch.manual_seed(0)
    model = build_model(preset("tiny", num_labels=len(labels)), "classification").eval()
    tokenizer = load_tokenizer(TOKENIZER)
    with Fasta(GENOMES / "ce1pct.fa.gz") as genome:
        sequence = genome.fetch("IV", 0, 100 * window)
    windows = [sequence[i:i + window] for i in range(0, len(sequence) - window, window // 2)]
    ids = [torch.tensor([1, *e.ids, 2]) for e in tokenizer.encode_batch(windows, add_special_tokens=False)]
    batch = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=3)
    with torch.no_grad():
        logits = model(batch, attention_mask=(batch != 3).long()).logits
        scale = 2 / logits.std(0)
        model.classifier.weight.mul_(scale[:, None])
        model.classifier.bias.copy_((model.classifier.bias - logits.mean(0)) * scale)
    save_model(model, folder, tokenizer)
    (folder / "task.json").write_text(json.dumps({"task": task, "window_bp": window,
                                                  "labels": dict(enumerate(labels))}))
    (folder / "finetune.json").write_text(json.dumps({"max_tokens": window // 3, "num_labels": len(labels)}))
    return folder

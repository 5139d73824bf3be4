"""Figures for the workflow's report: the pretraining loss curve, and the distribution of a scan's
scores (every window's, from its bedGraph, or the calls', from its BED). SVG, written atomically."""

import json
import logging
from pathlib import Path

import numpy as np

from .errors import UserError
from .outputs import atomic_output, check_outputs
from .sequences.fasta import open_text

log = logging.getLogger(__name__)


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4), layout="constrained")


def _save(fig, out) -> None:
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="svg")


def _text(path) -> str:
    """A text file, or a gzip/bgzip one (calls written as .bed.gz)."""
    try:
        with open_text(path) as handle:
            return handle.read()
    except (UnicodeDecodeError, OSError, EOFError) as error:
        raise UserError(f"{path}: not a readable text file ({error.__class__.__name__})") from None


def pretraining_loss(metrics, out) -> None:
    """Training loss per step, and the held-out loss where it was measured, from metrics.jsonl."""
    rows = []
    for number, line in enumerate(_text(metrics).splitlines(), 1):
        try:
            row = json.loads(line)
            rows.append({"step": int(row["step"]), "loss": float(row["loss"]),
                         **({"eval_loss": float(row["eval_loss"])} if "eval_loss" in row else {})})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UserError(f"{metrics}: line {number} is not a pretraining metrics line (JSON with step and loss)") from None
    if not rows:
        raise UserError(f"{metrics}: no steps logged")
    fig, ax = _figure()
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=0.8, label="training loss")
    held = [r for r in rows if "eval_loss" in r]
    if held:
        ax.plot([r["step"] for r in held], [r["eval_loss"] for r in held], "o-", label="held-out loss")
    ax.set(xlabel="step", ylabel="masked-LM loss (nats)", title=f"pretraining: {Path(metrics).parent.name}")
    ax.legend()
    _save(fig, out)


def score_distribution(scores, out) -> None:
    """Histogram of probabilities per track (label and strand) of a scan's bedGraph folder, or, for a
    calls BED, of the calls' scores per label."""
    path = Path(scores)
    groups: dict[str, list[float]] = {}
    files = sorted(path.glob("*.bedgraph")) if path.is_dir() else [path]
    windows = path.is_dir()
    for file in files:
        track = None
        for number, line in enumerate(_text(file).splitlines(), 1):
            fields = line.split("\t")
            try:
                if line.startswith("track"):
                    track = line.split('name="', 1)[1].split('"', 1)[0]
                elif windows and track is not None:
                    groups.setdefault(track, []).append(float(fields[3]))
                elif line.strip() and not windows:
                    groups.setdefault(fields[3], []).append(int(fields[4]) / 1000)
                elif line.strip():
                    raise ValueError
            except (IndexError, ValueError):
                raise UserError(f"{file}: line {number} is neither a scan track (bedGraph with a track line) "
                                "nor a scan call") from None
    fig, ax = _figure()
    for name, values in sorted(groups.items()):
        ax.hist(np.array(values), bins=50, range=(0, 1), histtype="step", label=f"{name} ({len(values):,})")
    what = "windows" if windows else "calls"
    ax.set(xlabel="probability", ylabel=what, title=f"scan scores: {path.stem}", yscale="log" if groups else "linear")
    if groups:
        ax.legend()
    else:
        ax.text(0.5, 0.5, f"no {what}", ha="center", transform=ax.transAxes)
    _save(fig, out)


def add_arguments(parser) -> None:
    parser.description = ("pretraining: the loss per step and the held-out loss from a pretraining metrics.jsonl. "
                          "scores: histograms of a scan's probabilities per label and strand (the bedGraph folder of "
                          "`scan --bedgraph`) or of its calls' scores per label (its BED). Writes SVG.")
    parser.add_argument("kind", choices=["pretraining", "scores"])
    parser.add_argument("input", type=Path, help="metrics.jsonl, or a scan's bedGraph folder or calls BED")
    parser.add_argument("--out", required=True, type=Path, help="figure (SVG)")


def run(args) -> None:
    check_outputs([args.out], [args.input])
    if not args.input.is_file() and not (args.kind == "scores" and args.input.is_dir()):
        raise UserError(f"{args.input}: no such file")
    (pretraining_loss if args.kind == "pretraining" else score_distribution)(args.input, args.out)
    log.info("wrote %s", args.out)

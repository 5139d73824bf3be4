"""Figures for the workflow's report: the pretraining loss curve, the distribution of a scan's scores
(from its bedGraph, or the calls', from its BED), and the metaplot of scans around annotated sites
(from scan-eval reports). SVG, written atomically."""

import json
import logging
from pathlib import Path

import numpy as np

from .bed import bed_header
from .bedgraph import bedgraph_table
from .errors import UserError
from .options import named_paths, output_file
from .outputs import atomic_output, check_outputs
from .sequences.fasta import open_text

log = logging.getLogger(__name__)


def figure(columns: int = 1, rows: int = 1):
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    import matplotlib.pyplot as plt

    return plt.subplots(rows, columns, figsize=(7 if columns == 1 else 5 * columns, 4 * rows), layout="constrained")


def check_figure_name(out) -> None:
    """Figures are SVG: refuse another name before any work, rather than SVG bytes in a .png."""
    if Path(out).suffix.lower() != ".svg":
        raise UserError(f"{out}: the figure is SVG; give it a .svg name")


def save_figure(fig, out) -> None:
    """The same figure in the same bytes on every run, so that a rerun of the workflow changes no report
    file it need not: no date, and element ids from the content (matplotlib salts them at random)."""
    import matplotlib

    with atomic_output(out) as tmp, matplotlib.rc_context({"svg.hashsalt": "dnabert2"}):
        fig.savefig(tmp, format="svg", metadata={"Date": None})


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
    text = _text(metrics)
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():  # JSON Lines readers (pandas, jq) pass over blank lines
            continue
        try:
            row = json.loads(line)
            rows.append({"step": int(row["step"]), "loss": float(row["loss"]),
                         **({"eval_loss": float(row["eval_loss"])} if "eval_loss" in row else {})})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            if number == len(lines) and not text.endswith("\n"):  # a run writing it, or one killed mid-line
                log.warning("%s: line %d is unfinished; plotted without it", metrics, number)
                break
            raise UserError(f"{metrics}: line {number} is not a pretraining metrics line (JSON with step and loss)") from None
    if not rows:
        raise UserError(f"{metrics}: no steps logged")
    fig, ax = figure()
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=0.8, label="training loss")
    held = [r for r in rows if "eval_loss" in r]
    if held:
        ax.plot([r["step"] for r in held], [r["eval_loss"] for r in held], "o-", label="held-out loss")
    # The model's folder names the run: the live file lies in its checkpoints folder.
    folder = Path(metrics).resolve().parent
    name = folder.parent.name if folder.name == "checkpoints" else folder.name
    ax.set(xlabel="step", ylabel="masked-LM loss (nats)", title=f"pretraining: {name}")
    ax.legend()
    save_figure(fig, out)


# Edges k/50, each the double nearest it: linspace's 0.7000000000000001 put a score of 0.700 in the
# bin below.
PROBABILITY_BINS = np.arange(51) / 50


def score_distribution(scores, out) -> None:
    """Histogram of probabilities per track (label and strand) of a scan's bedGraph folder or one of
    its bedGraph files, weighted by the bases each value covers (a per-base track joins equal
    neighbours into one line); or, for a calls BED, of the calls' scores per label."""
    path = Path(scores)
    files = sorted(path.glob("*.bedgraph")) if path.is_dir() else [path]
    if not files:
        raise UserError(f"{path}: no .bedgraph files in it; give a scan's --bedgraph folder or its calls BED")
    tracks = path.is_dir() or _is_track(path)
    counts: dict[str, np.ndarray] = {}
    for file in files:
        for name, histogram in ([_track(file)] if tracks else _calls(file)):
            counts[name] = counts.get(name, 0) + histogram
    fig, ax = figure()
    for name, histogram in sorted(counts.items()):
        ax.stairs(histogram, PROBABILITY_BINS, label=f"{name} ({histogram.sum():,.0f})")
    what = "bases" if tracks else "calls"
    total = sum(histogram.sum() for histogram in counts.values())  # tracks of a header alone count none
    ax.set(xlabel="probability", ylabel=what, title=f"scan scores: {path.stem}", yscale="log" if total else "linear")
    if counts:
        ax.legend()
    if not total:
        ax.text(0.5, 0.5, f"no {what}", ha="center", transform=ax.transAxes)
    save_figure(fig, out)


def _is_track(path) -> bool:
    """A bedGraph (four columns; or, with no row, a track line of type bedGraph) rather than calls
    (BED6+4, which a track line may head too)."""
    header, first = bed_header(path)
    if first is None:
        return any(line.startswith("track") and "type=bedGraph" in line for line in header)
    return first.count("\t") == 3


def _track(path) -> tuple[str, np.ndarray]:
    """(name, histogram of values weighted by the bases each covers) of a bedGraph, read in chunks so
    a genome's per-base track takes no more memory than a chunk; named by its track line, else its file."""
    import pandas as pd

    header, first = bed_header(path)
    named = [line.split('name="', 1)[1].split('"', 1)[0] for line in header if 'name="' in line]
    name = named[0] if named else Path(path).stem
    counts = np.zeros(len(PROBABILITY_BINS) - 1)
    if first is None:
        return name, counts
    before, done = (None, -np.inf), set()  # the last interval's contig and end; the contigs left behind
    try:
        with open_text(path) as handle:
            for chunk in bedgraph_table(handle, len(header), chunksize=1 << 20):
                contigs, table = chunk["contig"].to_numpy(), chunk[["start", "end", "value"]].to_numpy()
                spans, values = table[:, 1] - table[:, 0], table[:, 2]
                if not (np.all(spans > 0) and np.all((values >= 0) & (values <= 1))):
                    raise UserError(f"{path}: not a scan's track: intervals must be non-empty and values "
                                    "probabilities (0 to 1)")
                # Overlapping intervals would count their bases twice (bedGraphToBigWig refuses them too).
                ends = np.concatenate([[before[1]], table[:-1, 1]])
                same = contigs == np.concatenate([[before[0]], contigs[:-1]])
                wrong = same & (table[:, 0] < ends)
                for begun in np.flatnonzero(~same):  # a contig begun again, after another
                    wrong[begun] |= contigs[begun] in done
                    done.add(before[0] if begun == 0 else contigs[begun - 1])
                if wrong.any():
                    at = np.argmax(wrong)  # named by its interval: pandas passes blank lines over uncounted
                    raise UserError(f"{path}: {contigs[at]} {table[at, 0]:.0f} {table[at, 1]:.0f} overlaps the "
                                    "interval before it, or is out of order; a track's intervals are sorted and "
                                    "apart (sort -k1,1 -k2,2n)")
                before = (contigs[-1], table[-1, 1])
                counts += np.histogram(values, PROBABILITY_BINS, weights=spans)[0]
    except (ValueError, pd.errors.ParserError):
        raise UserError(f"{path}: not a bedGraph (contig, start, end and value on every line)") from None
    return name, counts


def _calls(path) -> list[tuple[str, np.ndarray]]:
    """(label, histogram of its calls' probabilities) for each label of a scan's calls."""
    from .scan.calls import read_calls

    by_label: dict[str, list[float]] = {}
    for call in read_calls(path):
        by_label.setdefault(call.label, []).append(call.score / 1000)
    return [(label, np.histogram(values, PROBABILITY_BINS)[0]) for label, values in by_label.items()]


def metaplot(evaluations: dict[str, Path], out) -> None:
    """The mean score around annotated sites (scan-eval's metaplot), one panel per label and one line
    per scan, so a model and its baseline sit side by side."""
    from .scan.evaluation import read_report, warn_unalike

    reports = {name: read_report(path) for name, path in evaluations.items()}
    warn_unalike(reports, "a metaplot")
    # A scan's look in every panel: ten colours, then the ten again dashed, dotted and dash-dotted.
    looks = {name: {"color": f"C{i % 10}", "linestyle": ("-", "--", ":", "-.")[i // 10 % 4]}
             for i, name in enumerate(reports)}
    curves = {}
    for name, path in evaluations.items():
        plotted = reports[name].get("metaplot")
        if plotted is None:  # no tracks read
            log.warning("%s: no metaplot (scan-eval read no tracks: it needs the --summary of a scan that wrote "
                        "--bigwig or --bedgraph)", path)
            continue
        lo, hi = plotted["offsets"]
        for label, values in plotted.items():
            if label != "offsets":
                # null where no site had a scored base at that offset: a gap in the line, not a 0
                values = np.array(values, dtype=float)
                if np.isnan(values).all():
                    log.warning("%s: no %s site with a scored base within %d bp; nothing to draw", path, label, hi)
                curves.setdefault(label, []).append((name, np.arange(lo, hi + 1), values))
    fig, axes = figure(max(1, len(curves)))
    for ax, (label, lines) in zip(np.atleast_1d(axes), sorted(curves.items())):
        for name, offsets, values in lines:
            unscored = np.isnan(values).all()
            ax.plot(offsets, values, lw=1, **looks[name], label=f"{name} (no scored site)" if unscored else name)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set(xlabel=f"bp from annotated {label} (5'→3')", ylabel=f"mean P({label})", title=label)
        ax.legend()
    if not curves:
        axes.text(0.5, 0.5, "no scan wrote score tracks", ha="center", transform=axes.transAxes)
    save_figure(fig, out)


KINDS = {"pretraining": "the loss per step and the held-out loss from a pretraining metrics.jsonl",
         "scores": "histograms of a scan's probabilities per label and strand, in bases (the bedGraph folder of "
                   "`scan --bedgraph`, or one of its files), or of its calls' scores per label (its BED)",
         "metaplot": "the mean score around annotated sites, per label, of scan-eval reports (NAME=PATH ...)"}


def add_arguments(parser) -> None:
    parser.description = ". ".join(f"{kind}: {what}" for kind, what in KINDS.items()) + ". Writes SVG."
    parser.add_argument("kind", choices=list(KINDS))
    parser.add_argument("inputs", nargs="+", metavar="input", help="metrics.jsonl (or the model or checkpoints "
                        "folder holding it); a scan's bedGraph folder or calls BED; or scan-eval reports, each "
                        "NAME=PATH or a path (named by its folder)")
    parser.add_argument("--out", required=True, type=output_file, help="figure (SVG)")


def run(args) -> None:
    named = named_paths(args.inputs) if args.kind == "metaplot" else {"": Path(args.inputs[0])}
    if args.kind == "pretraining" and named[""].is_dir():  # a model folder, or its checkpoints folder
        named[""] = named[""] / "metrics.jsonl"
    if args.kind != "metaplot" and len(args.inputs) > 1:
        raise UserError(f"plot {args.kind} takes one input, not {len(args.inputs)}")
    check_outputs([args.out], list(named.values()))
    check_figure_name(args.out)
    for path in named.values():
        if not path.is_file() and not (args.kind == "scores" and path.is_dir()):
            raise UserError(f"{path}: " + ("a folder, not a file" if path.is_dir() else "no such file"))
    if args.kind == "metaplot":
        metaplot(named, args.out)
    else:
        (pretraining_loss if args.kind == "pretraining" else score_distribution)(named[""], args.out)
    log.info("wrote %s", args.out)

"""`dnabert2 mutagenesis`: the change in a model's score from every possible SNV in a region, and a
figure of per-base importance with the sequence drawn as letters.

The score is a per-base model's probability of `--label` at one base (`--at`, by default the region's
best-scoring base on `--strand`), read in one window: the region with the model's flanks either side;
or a window classifier's probability of `--label` for the region as its window. A base's
importance is the reference score minus the mean score of its three substitutions: positive where
the base supports the call."""

import contextlib
import logging
import re
from pathlib import Path

import numpy as np

from .bases.inputs import encode_bases
from .devices import batch_tokens
from .errors import UserError
from .hub import model_path
from .options import add_settings, model_argument, output_file, settings_from, settings_with
from .outputs import TabSeparated, atomic_output, atomic_text, check_outputs, check_table_name, files_in, written_together
from .plots import check_figure_name, figure, save_figure
from .predict import window_rows
from .scan.dense import load_any_scanner, read_tokenizer, scored_bases
from .scan.model import is_per_base, is_window_classifier, label_index
from .sequences import Fasta, reverse_complement
from .settings import MutagenesisSettings

log = logging.getLogger(__name__)

BASES = "ACGT"
LONGEST = 2000  # bp of region: 3 windows of it (and the flanks) per base
BATCH = 256  # mutated windows scored at a time
COLOURS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839"}
_REGION = re.compile(r"(?P<contig>.+):(?P<start>\d[\d,]*)-(?P<end>\d[\d,]*)")


def parse_region(text: str) -> tuple[str, int, int]:
    """contig:start-end, 1-based and inclusive as samtools writes it (the contig may hold ':') →
    (contig, 0-based start, end)."""
    match = _REGION.fullmatch(text)
    if match is None:
        raise UserError(f"--region {text!r} is not contig:start-end")
    start, end = (int(match[key].replace(",", "")) for key in ("start", "end"))
    if not 1 <= start <= end:
        raise UserError(f"--region {text!r}: start must be 1 or more and not past the end")
    return match["contig"], start - 1, end


def substitutions(sequence: str) -> list[tuple[int, str]]:
    """The three SNVs of each A, C, G and T; an N or other IUPAC code has no single base to change."""
    return [(i, base) for i, ref in enumerate(sequence) if ref in BASES for base in BASES if base != ref]


class Scorer:
    """The score of a region's sequence (forward strand) and of its variants, for one model."""

    def __init__(self, folder: Path, s: MutagenesisSettings, region_bp: int):
        # A window classifier reads the region as its window (warning, as a scan does, when the model
        # was fine-tuned on another length; its token limit scaled to the region, not cut short).
        window = None if is_per_base(folder) else region_bp
        self.scanner = load_any_scanner(folder, window=window, device=s.device, dtype=s.dtype)
        self.tokenizer = read_tokenizer(self.scanner)
        self.column = label_index(self.scanner, s.label, "--label") if s.label else 1
        self.label = self.scanner.labels[self.column]
        self.strand = s.strand
        self.tokens = batch_tokens(s.batch_tokens, self.scanner.device)

    def oriented(self, sequences: list[str]) -> list[str]:
        return sequences if self.strand == "+" else [reverse_complement(q) for q in sequences]

    def per_base(self, windows: list[str]) -> list[np.ndarray]:
        """Each window's core scores of the label, in forward coordinates."""
        oriented = self.oriented(windows)
        encoded = encode_bases(self.tokenizer, oriented) if self.tokenizer else None
        scores = [p[:, self.column] for p in self.scanner.probabilities(encoded, oriented, self.tokens)]
        return scores if self.strand == "+" else [p[::-1] for p in scores]

    def window_scores(self, sequences: list[str]) -> np.ndarray:
        rows = window_rows(self.scanner, self.tokenizer, self.oriented(sequences), self.tokens)
        return np.array([row[self.column] for row in rows])


def mutagenesis(model, fasta, region: str, out, *, plot=None, settings: MutagenesisSettings | None = None,
                **overrides) -> dict:
    """Write `out` (TSV: contig, pos, ref, alt, score, delta) and, given `plot`, the figure; returns
    the target and the reference score."""
    s = settings_with(MutagenesisSettings, settings, overrides)
    check_outputs([out, plot], [fasta, *files_in(model)])  # first: a model's own file named is said so
    check_table_name(out, "mutagenesis")
    if plot is not None:
        check_figure_name(plot)
    contig, start, end = parse_region(region)
    if end - start > LONGEST:
        raise UserError(f"--region {region} is {end - start} bp; mutagenesis scores 3 variants of each base, so "
                        f"regions of at most {LONGEST} bp")
    folder = model_path(model)
    if s.at is not None and is_window_classifier(folder):
        raise UserError("--at is for per-base models; a window classifier scores the region as one window")
    if s.at is not None and not start < s.at <= end:
        raise UserError(f"--at {s.at} lies outside --region {region}")
    with Fasta(fasta) as genome:
        if end > genome.lengths.get(contig, end):
            raise UserError(f"--region {region} runs past the end of {contig} ({genome.lengths[contig]:,} bp)")
        genome.check_region(contig, start, end)
        sequence = genome.fetch(contig, start, end)
        variants = substitutions(sequence)
        if not variants:
            raise UserError(f"--region {region} holds no A, C, G or T to substitute")
        if s.at is not None and sequence[s.at - 1 - start] not in BASES:
            raise UserError(f"--at {s.at} is {sequence[s.at - 1 - start]}, which a per-base model gives no score: "
                            "give an A, C, G or T")
        scorer = Scorer(folder, s, end - start)
        flank = scorer.scanner.flank if scorer.scanner.dense else 0
        left = genome.fetch_padded(contig, start - flank, start)
        right = genome.fetch_padded(contig, end, end + flank)
    mutated = [sequence[:i] + base + sequence[i + 1:] for i, base in variants]
    if scorer.scanner.dense:
        reference = scorer.per_base([left + sequence + right])[0]
        # By default the best-scoring base of those a scan scores (not an N).
        at = int(np.where(scored_bases(sequence), reference, -1).argmax()) if s.at is None else s.at - 1 - start
        scores = np.concatenate([[p[at] for p in scorer.per_base([left + q + right for q in mutated[i:i + BATCH]])]
                                 for i in range(0, len(mutated), BATCH)])
        reference, scored = float(reference[at]), f"{start + at + 1}"
    else:
        reference = float(scorer.window_scores([sequence])[0])
        scores, scored = scorer.window_scores(mutated), f"{start + 1}-{end}"
    target = f"{contig}:{scored}({scorer.strand})"
    with written_together(), atomic_text(out) as handle, \
            (atomic_output(plot) if plot is not None else contextlib.nullcontext()) as tmp_plot:
        table = TabSeparated(handle)
        # What was scored, on each row: tables of several runs (labels, strands, bases) concatenate.
        table.writerow(["contig", "pos", "ref", "alt", "score", "delta", "label", "strand", "scored"])
        table.writerows([contig, start + i + 1, sequence[i], base, f"{score:.6f}", f"{score - reference:.6f}",
                         scorer.label, scorer.strand, scored] for (i, base), score in zip(variants, scores))
        if plot is not None:
            draw(sequence, start, variants, scores - reference, out=tmp_plot,
                 title=f"{scorer.label} at {target}: reference score {reference:.3f}")
    return {"label": scorer.label, "target": target, "reference_score": reference, "substitutions": len(variants)}


def draw(sequence: str, start: int, variants, deltas: np.ndarray, out, title: str) -> None:
    """Letters of the sequence scaled by each base's importance, over a heatmap of every change."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath
    from matplotlib.ticker import MaxNLocator
    from matplotlib.transforms import Affine2D

    change = np.full((len(BASES), len(sequence)), np.nan)
    for (i, base), delta in zip(variants, deltas):
        change[BASES.index(base), i] = delta
    changed = ~np.isnan(change)
    importance = -np.where(changed.any(axis=0), np.nansum(change, axis=0) / np.maximum(changed.sum(axis=0), 1), 0)
    fig, (letters, heat) = figure(rows=2)
    fig.set_size_inches(max(6, len(sequence) * 0.18), 6)
    font = FontProperties(family="DejaVu Sans", weight="bold")
    for i, (base, height) in enumerate(zip(sequence, importance)):
        glyph = TextPath((0, 0), base, size=1, prop=font)
        box = glyph.get_extents()
        scale = Affine2D().translate(-box.x0, -box.y0).scale(0.9 / box.width, height / box.height)
        patch = PathPatch(scale.translate(start + i + 0.55, 0).transform_path(glyph), color=COLOURS.get(base, "grey"))
        letters.add_patch(patch)
    bound = max(np.abs(importance).max(), 1e-6)
    letters.set(xlim=(start + 0.5, start + len(sequence) + 0.5), ylim=(min(0, importance.min()) * 1.1, bound * 1.1),
                ylabel="importance", title=title)
    letters.axhline(0, color="black", lw=0.5)
    limit = max(np.nanmax(np.abs(change)), 1e-6)
    image = heat.imshow(change, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest",
                        extent=(start + 0.5, start + len(sequence) + 0.5, len(BASES) - 0.5, -0.5))
    heat.set(yticks=range(len(BASES)), yticklabels=list(BASES), xlabel="position (1-based)",
             ylabel="substituted base")
    for ax in (letters, heat):  # a tick between two bases names neither
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(image, ax=heat, label="score change")
    save_figure(fig, out)


def add_arguments(parser) -> None:
    parser.description = ("Saturation mutagenesis: the score change of every possible SNV in a region, as a TSV, and "
                          "with --plot a figure of per-base importance with the sequence drawn as letters.")
    parser.add_argument("--model", required=True, type=model_argument, help="fine-tuned model folder (per-base or window), "
                        "or a Hugging Face Hub id (owner/name[@revision])")
    parser.add_argument("--fasta", required=True, type=Path, help="the genome")
    parser.add_argument("--region", required=True, help="contig:start-end, 1-based and inclusive (as samtools)")
    parser.add_argument("--out", required=True, type=output_file, help="output TSV: a row per substitution (bgzip-compressed when named .gz)")
    parser.add_argument("--plot", type=output_file, help="also draw the figure (SVG)")
    add_settings(parser, MutagenesisSettings)


def run(args) -> None:
    result = mutagenesis(args.model, args.fasta, args.region, args.out, plot=args.plot,
                         settings=settings_from(args, MutagenesisSettings))
    print(f"{args.out}: {result['substitutions']} substitutions; {result['label']} at {result['target']}, "
          f"reference score {result['reference_score']:.4f}")

"""GUE-style classification tasks built from a genome and its annotation, for any kind in the registry.

Positives are windows around the kind's annotated sites, on the site's strand (minus-strand ones
reverse-complemented), placed by the label's geometry. Negatives are windows holding the same motif
in the same place where no site is annotated (splice), genomic windows away from every site, or
GUE-style shuffled positives. Train, dev and test are split by contig, so test contigs are never
seen in training, or, where the contigs cannot carry a split, into stretches of each contig a window
apart; sequences are deduplicated within and across splits and classes are balanced within each split. Output: {train,dev,test}.csv in the GUE format and task.json describing the task.
"""

import logging
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..options import add_settings, changed, settings_from, settings_with
from ..outputs import check_folder
from ..sequences import Fasta, read_annotation, reverse_complement, too_many_n
from ..settings import TaskSettings
from .gue import SPLITS, deduplicate, write_csv, write_task_folder
from .motifs import check_motifs
from .registry import KINDS, Geometry, SiteLabel, TaskKind, task_kind
from .split import Split, choose_split, warn_few

log = logging.getLogger(__name__)


def window(fasta: Fasta, contig: str, position: int, strand: str, geometry: Geometry, max_n: float) -> str | None:
    """The window on the site's strand; None when it runs off the contig or holds more than max_n N."""
    start, end = geometry.span(position, strand)
    if start < 0 or end > fasta.lengths[contig]:
        return None
    sequence = fasta.fetch(contig, start, end)
    if too_many_n(sequence, max_n):
        return None
    return sequence if strand == "+" else reverse_complement(sequence)


def shuffled_negative(sequence: str, rng: np.random.Generator, segments: int = 20, moved: int = 12) -> str:
    """The GUE (DeePromoter) negative: cut the sequence into 20 pieces and shuffle 12 of them among
    their places, keeping the composition and part of the motif order."""
    bounds = np.linspace(0, len(sequence), segments + 1).astype(int)
    pieces = [sequence[a:b] for a, b in zip(bounds, bounds[1:])]
    chosen = rng.choice(segments, size=moved, replace=False)
    for place, piece in zip(chosen, rng.permutation(chosen)):
        pieces[place] = sequence[bounds[piece]:bounds[piece + 1]]
    return "".join(pieces)


def _random_sites(regions: list[tuple[str, int, int]], rng: np.random.Generator):
    """Endless random (contig, position, strand), uniform over the regions' bases."""
    lengths = np.array([end - start for _, start, end in regions], dtype=float)
    while True:
        contig, start, end = regions[rng.choice(len(regions), p=lengths / lengths.sum())]
        yield contig, start + int(rng.integers(end - start)), "+" if rng.random() < 0.5 else "-"


def _draw(candidates, accept, wanted: int, tries: int) -> list[str]:
    found = []
    for _, site in zip(range(tries), candidates):
        sequence = accept(*site)
        if sequence is not None:
            found.append(sequence)
            if len(found) == wanted:
                break
    return found


class Negatives:
    """Draws a split's negatives (label 0) for one task kind, in the way its --negatives asks, from
    windows that lie wholly in the split, away from the sites to `avoid` (the task's, those only
    transcripts left out give, and the junctions the annotation observed)."""

    def __init__(self, kind: TaskKind, how: str, fasta: Fasta, avoid: list, split: Split, rng, max_n: float,
                 margin: int):
        self.kind, self.how, self.fasta, self.split, self.rng = kind, how, fasta, split, rng
        self.max_n, self.margin = max_n, margin
        self.annotated = {(s.contig, s.position, s.strand) for s in avoid}
        # The windows of those sites as their labels place them: a donor's window with AG before its GT
        # is, base for base, an acceptor's one base upstream (donors at 200, acceptors at 199).
        geometry = {label.site: label.geometry for label in kind.sites}
        self.windows = {(s.contig, *geometry[s.kind].span(s.position, s.strand), s.strand)
                        for s in avoid if s.kind in geometry}
        positions = {}
        for s in avoid:
            positions.setdefault(s.contig, []).append(s.position)
        self.positions = {c: np.sort(p) for c, p in positions.items()}

    def draw(self, positives: list, split: str) -> list[tuple[str, int]]:
        wanted = max(sum(1 for _, label in positives if label == i) for i in range(1, len(self.kind.labels)))
        candidates = _random_sites(self.split.regions[split], self.rng)
        if self.kind.motifs:
            with_motif = [label for label in self.kind.sites if label.motif]
            drawn = []
            for label in with_motif:
                drawn += _draw(candidates, self._motif_acceptor(label, split), -(-wanted // len(with_motif)),
                               10_000 * wanted)
            return [(s, 0) for s in drawn]
        if self.how == "shuffled":
            return [(shuffled_negative(s, self.rng), 0) for s, _ in positives]
        drawn = _draw(candidates, lambda *site: self._away_from_sites(split, *site), wanted, 1000 * wanted)
        return [(s, 0) for s in drawn]

    def _window(self, split: str, contig: str, position: int, strand: str, geometry: Geometry) -> str | None:
        """The window around a position, if all of it lies in the split."""
        if self.split.of(contig, *geometry.span(position, strand)) != split:
            return None
        return window(self.fasta, contig, position, strand, geometry, self.max_n)

    def _motif_acceptor(self, label: SiteLabel, split: str):
        """Unannotated windows with the label's motif where its sites have it."""
        at = label.geometry.upstream + label.motif_offset

        def accept(contig, position, strand):
            if (contig, position, strand) in self.annotated or \
                    (contig, *label.geometry.span(position, strand), strand) in self.windows:
                return None
            sequence = self._window(split, contig, position, strand, label.geometry)
            return sequence if sequence is not None and sequence[at:at + 2] == label.motif else None

        return accept

    def _away_from_sites(self, split, contig, position, strand):
        """A window at least `margin` bp from every annotated site of the task."""
        geometry = self.kind.sites[0].geometry
        start, end = geometry.span(position, strand)
        near = self.positions.get(contig, np.array([], dtype=int))
        i = np.searchsorted(near, start - self.margin)
        if i < len(near) and near[i] < end + self.margin:
            return None
        return self._window(split, contig, position, strand, geometry)


def build_task(kind: str, genome, annotation, out, settings: TaskSettings | None = None, **overrides) -> dict:
    """Build a task into `out`/{train,dev,test}.csv and task.json; returns the task description.
    Settings: a TaskSettings, or its fields as keywords."""
    s = settings_with(TaskSettings, settings, overrides)
    test_contigs, dev_contigs, negatives, seed, max_n, margin = (s.test_contigs, s.dev_contigs, s.negatives, s.seed,
                                                                 s.max_n, s.margin)
    task = task_kind(kind)
    dense_only = changed(s, ("core", "flank", "empty_rate"))
    if dense_only:
        raise UserError(f"{', '.join(dense_only)} shape dense tasks (with --dense); a task of windows would ignore "
                        f"{'them' if len(dense_only) > 1 else 'it'}")
    check_folder(Path(out), s.force, inputs=[genome, annotation])
    task.check_negatives(negatives)
    task.check_min_intron(bool(changed(s, ["min_intron"])))
    rng = np.random.default_rng(seed)
    notes = read_annotation(annotation, s.min_intron, s.biotypes, s.tags)
    with Fasta(genome) as fasta:
        notes.keep_genome_contigs(fasta.lengths, str(genome))
        index = {label.site: i for i, label in enumerate(task.sites, 1)}
        sites = [(site, index[site.kind]) for site in notes.sites_required(index)]
        check_motifs(task, sites, fasta, annotation)
        windowed = [(site, label, window(fasta, site.contig, site.position, site.strand,
                                         task.sites[label - 1].geometry, max_n)) for site, label in sites]
        # The splits' shares count the sites that give a window: a contig shorter than one (an
        # organelle, a draft assembly's scaffold) would take a test share and give it no example.
        usable = [(site, label) for site, label, sequence in windowed if sequence is not None]
        if not usable:
            raise UserError(f"none of the {len(sites)} annotated sites has a whole {task.window_bp} bp window on the "
                            f"genome (contigs shorter than that, or windows with more than --max-n N)")
        if len(usable) < len(sites):  # heard under -q where it is more than a few near contig ends
            (log.warning if len(usable) < 0.95 * len(sites) else log.info)(
                "%d of %d annotated sites give no example: their %d bp windows run past a contig's end or hold a "
                "larger share of N than --max-n %g", len(sites) - len(usable), len(sites), task.window_bp, max_n)
        layout = choose_split(usable, fasta.lengths, test_contigs, dev_contigs, rng, task.window_bp)
        examples = {name: [] for name in SPLITS}
        for site, label, sequence in windowed:
            where = layout.of(site.contig, *task.sites[label - 1].geometry.span(site.position, site.strand))
            if sequence is not None and where is not None:
                examples[where].append((sequence, label))
        avoid = [site for site, _ in sites] + notes.unlabelled(set(index)) + notes.observed_sites(set(index))
        drawer = Negatives(task, negatives, fasta, avoid, layout, rng, max_n, margin)
        for name in SPLITS:
            examples[name] += drawer.draw(examples[name], name)

    examples = deduplicate(examples)
    examples = {split: _balance(rows, rng) for split, rows in examples.items()}
    for split, rows in examples.items():
        present = {label for _, label in rows}
        missing = [name for i, name in enumerate(task.labels) if i not in present]
        if missing:
            advice = ("its stretches of the contigs are too short for these windows: use a larger genome, or a kind "
                      "with shorter windows" if layout.how == "positions" else
                      "give other --test-contigs/--dev-contigs or a larger genome")
            if missing == [task.labels[0]] and not task.motifs and negatives == "genomic":
                advice = (f"genomic negatives must lie {margin} bp from every annotated site, and none was found "
                          "there: give --negatives shuffled, or a larger genome")
            raise UserError(f"the {split} split ends up without {', '.join(missing)} examples ({len(rows)} examples in "
                            f"all); {advice}")
    description = {
        "task": kind, "window_bp": task.window_bp, "labels": dict(enumerate(task.labels)),
        "negatives": "/".join(s.motif for s in task.sites if s.motif) + " genomic" if task.motifs else negatives,
        "seed": seed, "genome": str(genome), "annotation": str(annotation), "biotypes": s.biotypes, "tags": s.tags,
        "min_intron": s.min_intron if task.splices else None, "max_n": max_n, "margin": margin,
        **layout.describe(),
        "counts": {split: {name: sum(1 for _, label in rows if label == v) for v, name in enumerate(task.labels)}
                   for split, rows in examples.items()},
    }
    for split, counts in description["counts"].items():
        warn_few(split, counts, "example")
    write_task_folder(out, examples, write_csv, description, rng, force=s.force, inputs=[genome, annotation])
    return description


def _balance(rows: list, rng: np.random.Generator) -> list:
    """Down-sample every class to the smallest one."""
    by_label = {}
    for row in rows:
        by_label.setdefault(row[1], []).append(row)
    if not by_label:
        return []
    smallest = min(map(len, by_label.values()))
    kept = []
    for label in sorted(by_label):
        group = by_label[label]
        kept += [group[i] for i in sorted(rng.choice(len(group), size=smallest, replace=False))]
    return kept


def add_arguments(parser) -> None:
    kinds = ", ".join(f"{k.name} ({k.summary})" for k in KINDS.values())
    parser.description = (
        f"Build train/dev/test CSVs in the GUE format (sequence,label) from a genome and its annotation: {kinds}. "
        "Split by contig (or, where the contigs cannot carry a split, by position along each contig), "
        "deduplicated, balanced; task.json describes the result. Negatives of kinds with a motif (splice) are "
        "windows with it in place (GT at a donor's, AG at an acceptor's) that are the window of no site: neither a "
        "transcript's, nor one set aside (by --biotype, …), nor an intron line's that belongs to no transcript (the "
        "RNA-seq junctions in WormBase's GFF3); --dense labels those background, as SpliceAI's training does.")
    parser.add_argument("task", choices=list(KINDS))
    parser.add_argument("--genome", required=True, type=Path, metavar="FASTA", help="genome FASTA or GenBank")
    parser.add_argument("--annotation", required=True, type=Path, metavar="GTF|GFF3|GBK",
                        help="its gene annotation (a GenBank genome can be its own)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    add_settings(parser, TaskSettings)


def run(args) -> None:
    settings = settings_from(args, TaskSettings)
    if settings.dense:
        from .dense import build_dense_task

        task = build_dense_task(args.task, args.genome, args.annotation, args.out, settings)
        counts = ", ".join(f"{split} {c['windows']}" for split, c in task["counts"].items())
        print(f"{args.out}: dense {args.task}, {task['core_bp']} bp cores with {task['flank_bp']} bp flanks; "
              f"windows: {counts}; {_test_split(task)}")
        return
    task = build_task(args.task, args.genome, args.annotation, args.out, settings)
    counts = ", ".join(f"{split} {sum(c.values())}" for split, c in task["counts"].items())
    print(f"{args.out}: {args.task}, {task['window_bp']} bp windows; {counts}; {_test_split(task)}")


def _test_split(task: dict) -> str:
    """Where a task's test split lies, as its summary line says it."""
    return ("test stretches of " if task["split"] == "positions" else "test contigs ") + " ".join(task["contigs"]["test"])

"""Dense (base-resolution) tasks: long windows labelled at every base, built from a genome and its
annotation for any kind in the registry, for models with a per-base head.

A window is a core of `core_bp` bases with `flank_bp` bases of context on each side (N past a
contig's end); the loss and the metrics count the core only. Cores tile each split's stretches of
the genome, abutting, on both strands; a window's sequence and sites are on its own strand (minus
windows reverse-complemented), so the model always reads 5'→3'. Cores holding an annotated site of
the task are all kept; cores without one at the rate --empty-rate.

Each split is a CSV, {train,dev,test}.csv, with a header and one window per row:

    sequence  the window's bases, flanks included (flank_bp + core_bp + flank_bp)
    sites     its core's annotated sites as space-separated OFFSET:LABEL pairs (OFFSET from the
              core's first base, on the window's strand; LABEL the class index), empty for none
    contig, start, strand
              where the core lies: its first base on the forward strand (0-based) and its strand
    unlabelled
              its core's sites that only transcripts left out give (of other --biotype or --tag, or
              with exons that may be incomplete), as space-separated OFFSETs: real or maybe real, they
              are no site of the task and no background either, so the loss and the metrics skip them
              (a folder written before this column existed reads as none)

task.json says `"dense": true`, the kind, the labels, core_bp and flank_bp, and the split.
"""

import csv
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError, first_names
from ..options import changed
from ..outputs import atomic_text, check_folder
from ..sequences import Fasta, read_annotation, reverse_complement, too_many_n
from ..sequences.fasta import IUPAC
from ..settings import TaskSettings
from .description import read_description
from .gue import SPLITS, write_task_folder
from .motifs import check_motifs
from .registry import task_kind
from .split import choose_split, warn_few

log = logging.getLogger(__name__)

COLUMNS = ("sequence", "sites", "contig", "start", "strand", "unlabelled")
NUCLEOTIDES = set(IUPAC)
UNLABELLED = -1  # the label, while a task is built, of a site only transcripts left out give
IGNORED = -100  # the target of an unlabelled base: torch's cross-entropy skips it, as it skips the flanks


@dataclass
class DenseWindow:
    sequence: str  # flanks included, on the window's strand
    sites: dict[int, int]  # core offset → label, on the window's strand
    contig: str
    start: int  # the core's first base, forward strand
    strand: str
    unlabelled: frozenset[int] = frozenset()  # core offsets, on the window's strand, neither site nor background


def window_at(fasta: Fasta, contig: str, start: int, core: int, flank: int, strand: str) -> str:
    """The window whose core starts at `start`, on `strand`."""
    sequence = fasta.fetch_padded(contig, start - flank, start + core + flank)
    return sequence if strand == "+" else reverse_complement(sequence)


def core_offset(position: int, start: int, core: int, strand: str) -> int:
    """A base's offset in a core, counted along the core's strand."""
    return position - start if strand == "+" else start + core - 1 - position


def tile(stretch: tuple[str, int, int], core: int) -> list[int]:
    """Core starts abutting over a stretch; a last core flush with its end covers the remainder."""
    _, begin, end = stretch
    if end - begin < core:
        return []
    starts = list(range(begin, end - core + 1, core))
    return starts + ([end - core] if starts[-1] + core < end else [])


def build_dense_task(kind: str, genome, annotation, out, s: TaskSettings) -> dict:
    """Build a dense task into `out` (see the module's description); returns task.json's content."""
    task = task_kind(kind)
    if s.flank < 0 or s.core < 1:
        raise UserError(f"--core must be positive and --flank not negative (got {s.core} and {s.flank})")
    if changed(s, ["negatives"]):
        raise UserError("--negatives is for tasks of windows: a dense task labels every base, sites and the rest")
    task.check_min_intron(bool(changed(s, ["min_intron"])))
    check_folder(Path(out), s.force, inputs=[genome, annotation])
    rng = np.random.default_rng(s.seed)
    notes = read_annotation(annotation, s.min_intron, s.biotypes, s.tags)
    index = {label.site: i for i, label in enumerate(task.sites, 1)}
    with Fasta(genome) as fasta:
        notes.keep_genome_contigs(fasta.lengths, str(genome))
        sites, both = _one_label_each([(site, index[site.kind]) for site in notes.sites_required(index)])
        check_motifs(task, sites, fasta, annotation)
        # As in a task of windows, the splits' shares count the sites that give a window: not those
        # of a contig shorter than a core.
        usable = [(site, label) for site, label in sites if fasta.lengths[site.contig] >= s.core]
        short = sorted({site.contig for site, _ in sites if fasta.lengths[site.contig] < s.core})
        if short:
            log.warning("%d contig(s) shorter than --core (%d bp) give no window, and their %d annotated site(s) "
                        "none: %s", len(short), s.core, len(sites) - len(usable), first_names(short))
        if not usable:
            raise UserError(f"none of the {len(sites)} annotated sites lies on a contig of at least --core "
                            f"{s.core} bp; give a shorter --core")
        layout = choose_split(usable, fasta.lengths, s.test_contigs, s.dev_contigs, rng, s.core + 2 * s.flank,
                              s.core)
        by_place = _by_place(sites + [(site, UNLABELLED) for site in [*both, *notes.unlabelled(set(index))]])
        # Only training leaves cores out: dev and test hold every one, so that their per-base metrics are
        # those a scan of their contigs gives (scan-eval), not of a share of the background.
        examples = {split: _windows(fasta, layout.regions[split], by_place, s, rng,
                                    s.empty_rate if split == "train" else 1.0) for split in SPLITS}
    other = "" if layout.how == "positions" else "other --test-contigs/--dev-contigs, "
    shorter = "--core or --flank" if layout.how == "positions" else "--core"  # splits by position lie a window apart
    for split, rows in examples.items():
        if not any(row.sites for row in rows):
            kept = " of the transcripts --biotype and --tag keep" if s.biotypes or s.tags else ""
            raise UserError(f"the {split} split holds no annotated site{kept} in a {s.core} bp core; give {other}a "
                            f"shorter {shorter}, or a larger genome")
    absent = labels_absent(examples["train"], task.labels)
    if absent:  # read_dense_task would refuse the task: nothing to learn them from
        raise UserError(f"the train split holds no {', no '.join(absent)} site; give {other}a larger genome")
    description = {
        "task": kind, "dense": True, "core_bp": s.core, "flank_bp": s.flank, "labels": dict(enumerate(task.labels)),
        "empty_rate": s.empty_rate, "seed": s.seed, "genome": str(genome), "annotation": str(annotation),
        "biotypes": s.biotypes, "tags": s.tags, "min_intron": s.min_intron if task.splices else None, "max_n": s.max_n,
        **layout.describe(),
        "counts": {split: {"windows": len(rows), **_site_counts(rows, task.labels, s.core)}
                   for split, rows in examples.items()},
    }
    for split, counts in description["counts"].items():
        warn_few(split, {name: counts[name] for name in task.labels[1:]}, "site")
    write_task_folder(out, examples, write_dense_split, description, rng, force=s.force, inputs=[genome, annotation])
    return description


def _site_counts(rows: list[DenseWindow], labels, core: int) -> dict[str, int]:
    """Annotated sites per label, and unlabelled ones, each once (see counted)."""
    once = counted(rows, core)
    found = Counter(v for i, w in enumerate(rows) for o, v in w.sites.items() if once[i, o])
    unlabelled = sum(1 for i, w in enumerate(rows) for o in w.unlabelled if once[i, o])
    return {**{name: found[i] for i, name in enumerate(labels) if i}, "unlabelled": unlabelled}


def counted(rows: list[DenseWindow], core: int) -> np.ndarray:
    """(windows, core): the core bases that count, each genome base (contig, strand, position) once:
    a stretch's last core overlaps the one before it, and its overlapped bases are not counted again."""
    mask = np.ones((len(rows), core), dtype=bool)
    reached: dict[tuple[str, str], int] = {}  # the end of the cores seen so far, by contig and strand
    for i in sorted(range(len(rows)), key=lambda i: (rows[i].contig, rows[i].strand, rows[i].start)):
        w = rows[i]
        seen = min(max(reached.get((w.contig, w.strand), w.start) - w.start, 0), core)
        if seen:  # forward positions start .. start+seen-1: the core's first bases on +, its last on -
            (mask[i, :seen] if w.strand == "+" else mask[i, core - seen:])[:] = False
        reached[(w.contig, w.strand)] = max(reached.get((w.contig, w.strand), 0), w.start + core)
    return mask


def _one_label_each(sites) -> tuple[list, list]:
    """The sites whose base has one label, and the bases annotated as two kinds of site (one intron's
    last base where another's first lies, AG|GT): the head gives a base one label, and keeping either
    would teach it that the other is background there. Those are left unlabelled, and said so."""
    kinds: dict[tuple, set[int]] = {}
    for site, label in sites:
        kinds.setdefault((site.contig, site.strand, site.position), set()).add(label)
    kept = [(site, label) for site, label in sites if len(kinds[site.contig, site.strand, site.position]) == 1]
    both = {(site.contig, site.strand, site.position): site for site, _ in sites
            if len(kinds[site.contig, site.strand, site.position]) > 1}
    if both:
        log.warning("%d base(s) are annotated as two kinds of site (one intron's last base where another's first "
                    "lies); a base gets one label, so they are left unlabelled: %s", len(both),
                    first_names([f"{c}:{p + 1}({strand})" for c, strand, p in both]))
    return kept, list(both.values())


def _by_place(sites) -> dict[tuple[str, str], np.ndarray]:
    """(contig, strand) → (sites, 2) array of position and label (UNLABELLED for a site no label is given)."""
    by_place = {}
    for site, label in sites:
        by_place.setdefault((site.contig, site.strand), []).append((site.position, label))
    return {key: np.array(sorted(v), dtype=np.int64).reshape(-1, 2) for key, v in by_place.items()}


def _windows(fasta: Fasta, stretches, by_place: dict, s: TaskSettings, rng, empty_rate: float) -> list[DenseWindow]:
    """The split's windows: every core with a site, and the others at `empty_rate`; cores with more
    than max_n N are left out, and said so."""
    found, skipped, short, unplaced = [], 0, [], 0
    for stretch in stretches:
        contig, begin, end = stretch
        if end - begin < s.core:
            short.append(f"{contig}:{begin}-{end}")
            for strand in "+-":
                placed, labels = by_place.get((contig, strand), np.zeros((0, 2), dtype=np.int64)).T
                unplaced += int(((placed >= begin) & (placed < end) & (labels > 0)).sum())
        for start in tile(stretch, s.core):
            for strand in "+-":
                placed = by_place.get((contig, strand), np.zeros((0, 2), dtype=np.int64))
                inside = placed[(placed[:, 0] >= start) & (placed[:, 0] < start + s.core)]
                labelled = inside[inside[:, 1] > 0]
                if not len(labelled) and rng.random() >= empty_rate:
                    continue
                sequence = window_at(fasta, contig, start, s.core, s.flank, strand)
                core = sequence[s.flank:s.flank + s.core]
                if too_many_n(core, s.max_n):
                    skipped += len(labelled)
                    continue
                labels = {core_offset(int(p), start, s.core, strand): int(v) for p, v in labelled}
                unlabelled = {core_offset(int(p), start, s.core, strand) for p, v in inside if v == UNLABELLED}
                found.append(DenseWindow(sequence, labels, contig, start, strand, frozenset(unlabelled - set(labels))))
    if short:
        log.warning("%d stretch(es) shorter than --core (%d bp) give no window, and their %d annotated site(s) "
                    "none: %s", len(short), s.core, unplaced, first_names(short))
    if skipped:
        log.warning("%d annotated site(s) left out: their cores hold more than --max-n %g N", skipped, s.max_n)
    return found


def write_dense_split(path: Path, rows: list[DenseWindow]) -> None:
    with atomic_text(path) as handle:
        table = csv.writer(handle, lineterminator="\n")
        table.writerow(COLUMNS)
        for w in rows:
            sites = " ".join(f"{offset}:{label}" for offset, label in sorted(w.sites.items()))
            table.writerow([w.sequence, sites, w.contig, w.start, w.strand, " ".join(map(str, sorted(w.unlabelled)))])


@dataclass
class DenseTask:
    """A dense task folder, read: its description and each split's windows."""

    folder: Path
    description: dict
    splits: dict[str, list[DenseWindow]]

    @property
    def core(self) -> int:
        return self.description["core_bp"]

    @property
    def flank(self) -> int:
        return self.description["flank_bp"]

    @property
    def labels(self) -> list[str]:
        return [self.description["labels"][str(i)] for i in range(len(self.description["labels"]))]

    def targets(self, split: str) -> np.ndarray:
        """(windows, core) class index of every core base, IGNORED where it is unlabelled."""
        rows = self.splits[split]
        out = np.zeros((len(rows), self.core), dtype=np.int64)
        for i, w in enumerate(rows):
            for offset, label in w.sites.items():
                out[i, offset] = label
            out[i, list(w.unlabelled)] = IGNORED
        return out


def labels_absent(rows: list[DenseWindow], labels: list[str]) -> list[str]:
    """The site labels (all but 0, none) that no window holds."""
    held = {label for row in rows for label in row.sites.values()}
    return [name for i, name in enumerate(labels) if i and i not in held]


def read_dense_task(folder) -> DenseTask:
    folder = Path(folder)
    description = read_description(folder)
    for key in ("core_bp", "flank_bp", "labels"):
        if key not in description:
            raise UserError(f"{folder}/task.json: a dense task needs {key!r}")
    task = DenseTask(folder, description, {})
    for split in SPLITS:
        task.splits[split] = _read_dense_split(folder / f"{split}.csv", task)
    if not any(w.sites for w in task.splits["train"]):
        raise UserError(f"{folder}/train.csv: no annotated site in any window; nothing to learn")
    # As a task of windows refuses a class train lacks: the model would be scored on what it never saw.
    absent = labels_absent(task.splits["train"], task.labels)
    if absent:
        raise UserError(f"{folder}/train.csv: no {', no '.join(absent)} site in any window; nothing to learn "
                        f"{'it' if len(absent) == 1 else 'them'} from")
    if not any(w.sites for w in task.splits["dev"]):  # PR-AUC is undefined at every epoch: the first would be kept
        raise UserError(f"{folder}/dev.csv: no annotated site in any window; dev PR-AUC, which picks the epoch and "
                        "the seed, needs one")
    return task


def _read_dense_split(path: Path, task: DenseTask) -> list[DenseWindow]:
    if not path.is_file():
        raise UserError(f"{path}: no such file (a dense task folder holds train.csv, dev.csv and test.csv)")
    length, classes = task.core + 2 * task.flank, len(task.labels)
    rows = []
    # Bytes that are no UTF-8 become U+FFFD, which the sequence and number checks below refuse.
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        table = csv.reader(handle)
        header = tuple(next(table, ()))
        if header not in (COLUMNS, COLUMNS[:-1]):
            raise UserError(f"{path}: not a dense task split (header {','.join(COLUMNS)})")
        for number, row in enumerate(table, 2):
            try:
                sequence, sites, contig, start, strand, unlabelled = row if len(header) == len(COLUMNS) else [*row, ""]
                labels = {int(o): int(v) for o, v in (pair.split(":") for pair in sites.split())}
                unlabelled = frozenset(map(int, unlabelled.split()))
                start = int(start)
            except ValueError:
                raise UserError(f"{path}: line {number} is not {','.join(header)}") from None
            offsets = [*labels, *unlabelled]
            if len(sequence) != length or not all(0 <= o < task.core for o in offsets) \
                    or not all(0 < v < classes for v in labels.values()):
                raise UserError(f"{path}: line {number}: a window of {task.core + 2 * task.flank} bp with sites "
                                f"OFFSET:LABEL and unlabelled OFFSETs inside its {task.core} bp core and labels "
                                f"1..{classes - 1} expected")
            sequence = sequence.upper()
            found = sorted(set(sequence) - NUCLEOTIDES)
            if found:  # a genome's IUPAC codes reach the flanks as they are, and are read as N
                raise UserError(f"{path}: line {number}: characters that are no nucleotide ({''.join(found)[:10]!r})")
            rows.append(DenseWindow(sequence, labels, contig, start, strand, unlabelled - set(labels)))
    if not rows:
        raise UserError(f"{path}: no windows")
    return rows

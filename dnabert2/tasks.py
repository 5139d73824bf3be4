"""GUE-style classification tasks built from a genome and its annotation.

- promoter: 300 bp, −249..+50 around annotated TSSs (label 1), against non-promoter windows.
- core-promoter: 70 bp, −34..+35 around TSSs.
- splice: 400 bp centred on annotated exon-intron boundaries: 1 = donor, 2 = acceptor, 0 = neither,
  the last drawn where a GT (donor-like) or AG (acceptor-like) sits at the centre but no site is annotated.

Windows are on the site's strand (minus-strand ones reverse-complemented). Train, dev and test are
split by contig, so test contigs are never seen in training; sequences are deduplicated within and
across splits and classes are balanced within each split. Output: {train,dev,test}.csv in the GUE
format (`sequence,label`) and task.json describing the task.
"""

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .outputs import atomic_output
from .sequences import Fasta, read_annotation, reverse_complement

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Geometry:
    """A window around a single-base site, in bases upstream and downstream of it on its strand."""

    upstream: int
    downstream: int

    @property
    def length(self) -> int:
        return self.upstream + self.downstream + 1

    def span(self, position: int, strand: str) -> tuple[int, int]:
        if strand == "+":
            return position - self.upstream, position + self.downstream + 1
        return position - self.downstream, position + self.upstream + 1


PROMOTER = Geometry(249, 50)
CORE_PROMOTER = Geometry(34, 35)
# The boundary sits between window bases 199 and 200: a donor's intron starts at base 200 (its GT),
# an acceptor's intron ends at base 199 (its AG).
DONOR = Geometry(200, 199)
ACCEPTOR = Geometry(199, 200)
KINDS = {"promoter": ("non-promoter", "promoter"), "core-promoter": ("non-promoter", "promoter"),
         "splice": ("neither", "donor", "acceptor")}


def window(fasta: Fasta, contig: str, position: int, strand: str, geometry: Geometry, max_n: float) -> str | None:
    """The window on the site's strand; None when it runs off the contig or holds more than max_n N."""
    start, end = geometry.span(position, strand)
    if start < 0 or end > fasta.lengths[contig]:
        return None
    sequence = fasta.fetch(contig, start, end)
    if len(sequence) - sum(sequence.count(b) for b in "ACGT") > max_n * len(sequence):
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


def split_contigs(counts: dict[str, int], test_contigs, dev_contigs, rng, fraction: float = 0.1) -> dict[str, str]:
    """Contig → split. Given contigs are used as they are; otherwise contigs (in a seeded order) go to
    test, then dev, until each holds at least `fraction` of the sites."""
    named = {c: "test" for c in test_contigs or ()} | {c: "dev" for c in dev_contigs or ()}
    unknown = sorted(set(named) - set(counts))
    if unknown:
        raise UserError(f"contigs with no annotated sites (or not in the genome): {', '.join(unknown)}")
    total = sum(counts.values())
    assignment = dict(named)
    for split, given in (("test", test_contigs), ("dev", dev_contigs)):
        if given:
            continue
        for contig in rng.permutation(sorted(counts)):
            if sum(counts[c] for c, s in assignment.items() if s == split) >= fraction * total:
                break
            if contig not in assignment and len(counts) - len(assignment) > 1:
                assignment[contig] = split
    assignment = {c: assignment.get(c, "train") for c in counts}
    for split in SPLITS:
        if not any(s == split for s in assignment.values()):
            raise UserError(f"cannot split {len(counts)} contig(s) with annotated sites into train, dev and "
                            f"test by contig; give --test-contigs and --dev-contigs, or a genome with more contigs")
    return assignment


def _random_sites(fasta: Fasta, contigs: list[str], rng: np.random.Generator):
    """Endless random (contig, position, strand), uniform over the contigs' bases."""
    lengths = np.array([fasta.lengths[c] for c in contigs], dtype=float)
    while True:
        contig = contigs[rng.choice(len(contigs), p=lengths / lengths.sum())]
        yield contig, int(rng.integers(fasta.lengths[contig])), "+" if rng.random() < 0.5 else "-"


def _draw(candidates, accept, wanted: int, tries: int) -> list[str]:
    found = []
    for _, site in zip(range(tries), candidates):
        sequence = accept(*site)
        if sequence is not None:
            found.append(sequence)
            if len(found) == wanted:
                break
    return found


def build_task(kind: str, genome, annotation, out, *, test_contigs=None, dev_contigs=None, negatives="genomic",
               seed: int = 0, max_n: float = 0.0, margin: int = 1000) -> dict:
    """Build a task into `out`/{train,dev,test}.csv and task.json; returns the task description."""
    if kind not in KINDS:
        raise UserError(f"unknown task {kind!r}; choose one of {', '.join(KINDS)}")
    if negatives not in ("genomic", "shuffled") or (negatives == "shuffled" and kind == "splice"):
        raise UserError(f"negatives must be 'genomic'{' or shuffled' if kind != 'splice' else ''}, not {negatives!r}")
    rng = np.random.default_rng(seed)
    notes = read_annotation(annotation)
    with Fasta(genome) as fasta:
        notes.check_contigs(fasta.lengths, str(genome))
        if kind == "splice":
            sites = [(s, 1 if s.kind == "donor" else 2) for s in notes.splice_sites()]
        else:
            sites = [(s, 1) for s in notes.tss()]
        if not sites:
            raise UserError(f"{annotation}: no annotated {'splice sites' if kind == 'splice' else 'TSSs'}")
        counts = {}
        for site, _ in sites:
            counts[site.contig] = counts.get(site.contig, 0) + 1
        assignment = split_contigs(counts, test_contigs, dev_contigs, rng)

        geometry = {1: PROMOTER if kind == "promoter" else CORE_PROMOTER, 2: ACCEPTOR}
        if kind == "splice":
            geometry[1] = DONOR
        examples = {split: [] for split in SPLITS}
        for site, label in sites:
            sequence = window(fasta, site.contig, site.position, site.strand, geometry[label], max_n)
            if sequence is not None:
                examples[assignment[site.contig]].append((sequence, label))

        annotated = {(s.contig, s.position, s.strand) for s, _ in sites}
        for split in SPLITS:
            positives = examples[split]
            contigs = [c for c, s in assignment.items() if s == split]
            wanted = max(sum(1 for _, label in positives if label == value) for value in (1, 2) if value in geometry)
            if kind == "splice":
                for motif, shape in (("GT", DONOR), ("AG", ACCEPTOR)):
                    at = shape.upstream if motif == "GT" else shape.upstream - 1

                    def accept(contig, position, strand, shape=shape, motif=motif, at=at):
                        if (contig, position, strand) in annotated:
                            return None
                        sequence = window(fasta, contig, position, strand, shape, max_n)
                        return sequence if sequence is not None and sequence[at:at + 2] == motif else None

                    drawn = _draw(_random_sites(fasta, contigs, rng), accept, (wanted + 1) // 2, 10_000 * wanted)
                    positives += [(s, 0) for s in drawn]
            elif negatives == "shuffled":
                positives += [(shuffled_negative(s, rng), 0) for s, _ in list(positives)]
            else:
                tss = {}
                for s, _ in sites:
                    tss.setdefault(s.contig, []).append(s.position)
                tss = {c: np.sort(p) for c, p in tss.items()}

                def accept(contig, position, strand):
                    start, end = geometry[1].span(position, strand)
                    near = tss.get(contig, np.array([], dtype=int))
                    i = np.searchsorted(near, start - margin)
                    if i < len(near) and near[i] < end + margin:
                        return None
                    return window(fasta, contig, position, strand, geometry[1], max_n)

                drawn = _draw(_random_sites(fasta, contigs, rng), accept, wanted, 1000 * wanted)
                positives += [(s, 0) for s in drawn]

    examples = _deduplicate(examples)
    examples = {split: _balance(rows, rng) for split, rows in examples.items()}
    for split, rows in examples.items():
        if len({label for _, label in rows}) < len(KINDS[kind]):
            raise UserError(f"the {split} split ends up without every class ({len(rows)} examples); "
                            "give other --test-contigs/--dev-contigs or a larger genome")
    out = Path(out)
    description = {
        "task": kind, "window_bp": geometry[1].length if kind != "splice" else DONOR.length,
        "labels": dict(enumerate(KINDS[kind])), "negatives": negatives if kind != "splice" else "GT/AG genomic",
        "seed": seed, "genome": str(genome), "annotation": str(annotation),
        "contigs": {split: sorted(c for c, s in assignment.items() if s == split) for split in SPLITS},
        "counts": {split: {KINDS[kind][v]: sum(1 for _, label in rows if label == v) for v in range(len(KINDS[kind]))}
                   for split, rows in examples.items()},
    }
    for split, rows in examples.items():
        write_csv(out / f"{split}.csv", [rows[i] for i in rng.permutation(len(rows))])
    with atomic_output(out / "task.json") as tmp:
        Path(tmp).write_text(json.dumps(description, indent=2) + "\n")
    return description


def write_csv(path: Path, rows) -> None:
    """A GUE-format CSV: a sequence,label header, then one row per example."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as handle:
        table = csv.writer(handle, lineterminator="\n")
        table.writerow(["sequence", "label"])
        table.writerows(rows)


def random_split(pairs: list, folder, seed: int = 0, fractions=(0.8, 0.1)) -> Path:
    """A GUE task folder from labelled (sequence, label) pairs that have no contigs to split by: a
    seeded random train/dev/test split (80/10/10 by default)."""
    folder = Path(folder)
    order = np.random.default_rng(seed).permutation(len(pairs))
    train, dev = (int(f * len(order)) for f in (fractions[0], fractions[0] + fractions[1]))
    for split, chosen in zip(SPLITS, (order[:train], order[train:dev], order[dev:])):
        write_csv(folder / f"{split}.csv", [pairs[i] for i in chosen])
    return folder


def _deduplicate(examples: dict) -> dict:
    """Each sequence once, in the first of test, dev, train that holds it (a sequence with two labels
    is dropped: it cannot be learned)."""
    labels = {}
    for rows in examples.values():
        for sequence, label in rows:
            labels.setdefault(sequence, set()).add(label)
    seen, result = set(), {}
    for split in ("test", "dev", "train"):
        result[split] = []
        for sequence, label in examples[split]:
            if sequence not in seen and len(labels[sequence]) == 1:
                seen.add(sequence)
                result[split].append((sequence, label))
    return {split: result[split] for split in SPLITS}


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

"""Scanning aligned reads (BAM/CRAM): the read sequences themselves, with hits placed on the reference
through each alignment (spliced reads included) and counted per site; or the reference regions the
reads cover at or above some depth."""

import contextlib
import logging
import time
from collections import defaultdict

import numpy as np
from torch.utils.data import DataLoader, IterableDataset
from tqdm import tqdm

from ..devices import overlapped, watched
from ..errors import UserError
from ..sequences import (Fasta, Fragments, RegionIndex, aligned_reads, check_reference, mate_start, merge_regions,
                         open_alignments, reverse_complement, too_many_n)
from ..tokenizer import load_tokenizer
from ..bases.inputs import encode_bases
from ..bases.metrics import as_scores
from .calls import Call, score_of, threshold_score
from .dense import DenseScanner, scored_bases
from .genome import Tally, tokenised
from .model import Scanner
from .peaks import PeakCaller
from .plan import Grid, as_is, worker_share

log = logging.getLogger(__name__)

COVERAGE_STEP = 1_000_000  # bp of coverage counted at a time
READ_BIN = 50_000  # reads are batched by where they start, in bins of this many bp


def split_regions(regions, i: int, n: int) -> list[tuple[str, int, int]]:
    """The i-th of n stretches of `regions` (in genome order) holding about the same number of bases."""
    total = sum(end - start for _, start, end in regions)
    lo, hi = i * total // n, (i + 1) * total // n
    ranges, offset = [], 0
    for contig, start, end in regions:
        a, b = max(lo - offset, 0), min(hi - offset, end - start)
        if a < b:
            ranges.append((contig, start + a, start + b))
        offset += end - start
    return ranges


def covered_regions(bam, ranges, min_depth: int, pad: int, lengths: dict[str, int], min_mapq: int = 0):
    """Stretches of `ranges` where at least min_depth primary alignments cover the reference (introns
    not counted), widened by `pad` on each side within their range (a scan never reaches outside the
    regions asked for); one that the range's edge cuts short of 2 × pad + 1 bp (at least a window)
    grows inwards to it, so that its covered bases still get a window."""
    found, window = [], 2 * pad + 1
    for contig, begin, end in ranges:
        for lo in range(begin, end, COVERAGE_STEP):
            hi = min(lo + COVERAGE_STEP, end)
            depth = np.zeros(hi - lo + 1, dtype=np.int32)
            for read in aligned_reads(bam, contig, lo, hi, min_mapq):
                for a, b in read.get_blocks():
                    a, b = max(a, lo), min(b, hi)
                    if a < b:
                        depth[a - lo] += 1
                        depth[b - lo] -= 1
            covered = np.concatenate([[False], np.cumsum(depth[:-1]) >= min_depth, [False]])
            edges = np.flatnonzero(covered[1:] != covered[:-1])
            for a, b in zip(edges[::2], edges[1::2]):
                start, stop = max(begin, lo + int(a) - pad), min(end, lo + int(b) + pad)
                if stop - start < window:
                    start, stop = max(begin, min(start, stop - window)), min(end, max(stop, start + window))
                found.append((contig, start, stop))
    return merge_regions(found, {c: i for i, c in enumerate(lengths)})


class ReadWindows(IterableDataset):
    """Windows along each read's sequence (as stored: on the reference's forward strand) on both
    strands, with the reference position of each called label's site.

    Reads come in blocks of a bin (the READ_BIN bp their alignment starts in), each bin read once;
    a window is classified when one of its sites lands in the scanned regions, and its sites count
    only inside this chunk's ranges. What a block sends to the model thus depends on the bin and the
    regions, never on the chunking: a read meets the same batch-mates in every chunked run. Chunks
    sharing a bin both classify it; a window is tallied by the one chunk that holds its first site in
    the scanned regions, so gathered tallies are the unchunked scan's."""

    def __init__(self, bam_path, reference, regions, ranges, scanner: Scanner, names: list[str], stride: int,
                 min_mapq: int, strands: str, max_n: float, block_reads: int = 256):
        self.bam_path, self.reference, self.ranges, self.strands = bam_path, reference, ranges, strands
        self.max_n = max_n
        self.scanned, self.mine = RegionIndex(regions), RegionIndex(ranges)
        self.tokenizer, self.max_tokens = scanner.folder / "tokenizer.json", scanner.max_tokens
        self.size, self.stride, self.min_mapq, self.block_reads = scanner.window, stride, min_mapq, block_reads
        self.offsets = [scanner.offsets[name] for name in names]

    def bins(self, bam) -> list[tuple[str, int]]:
        """(contig, bin) holding a read that reaches into one of this chunk's ranges, in order."""
        found = []
        for contig, begin, end in self.ranges:
            reaching = [r.reference_start for r in aligned_reads(bam, contig, begin, begin + 1, self.min_mapq)]
            found += [(contig, b) for b in range(min(reaching + [begin]) // READ_BIN, (end - 1) // READ_BIN + 1)]
        return list(dict.fromkeys(found))

    def blocks(self, bam, genome):
        for contig, b in self.bins(bam):
            lo, hi = b * READ_BIN, (b + 1) * READ_BIN
            reads, sent = [], False
            for read in aligned_reads(bam, contig, lo, hi, self.min_mapq, bases=True, genome=genome):
                if read.reference_start < lo:
                    continue  # the previous bin's
                reads.append(read)
                if len(reads) == self.block_reads:
                    yield contig, lo, reads
                    reads, sent = [], True
            if reads or not sent:
                yield contig, lo, reads

    def __iter__(self):
        tokenizer = load_tokenizer(self.tokenizer) if self.tokenizer else None
        try:
            with open_alignments(self.bam_path, self.reference) as bam, \
                    Fasta(self.reference) if self.reference else contextlib.nullcontext() as genome:
                for _, (contig, lo, reads) in worker_share(self.blocks(bam, genome)):
                    yield {"contig": contig, "start": lo, "names": [r.query_name for r in reads],
                           "mates": [mate_start(r) for r in reads], **self.prepare(tokenizer, contig, reads)}
        except UserError as error:  # travels to the main process as data, not as a traceback
            yield {"error": str(error)}

    def prepare(self, tokenizer, contig, reads) -> dict:
        pieces, strands, sites, owned, readers = [], [], [], [], []
        read_bases = scanned = short = skipped = 0
        for k, read in enumerate(reads):
            sequence = read.query_sequence.upper()
            if len(sequence) < self.size:  # no window fits: counted by the chunk holding where it starts
                short += bool(self.mine.holds(contig, np.array([read.reference_start]))[0])
                continue
            reverse = reverse_complement(sequence)
            reference = reference_positions(read)
            grid = Grid(contig, 0, len(sequence), self.size, self.stride)
            classified = len(owned)
            for i in range(len(grid)):
                s = grid.window_start(i)
                unknown = too_many_n(sequence[s:s + self.size], self.max_n)
                for strand in self.strands:
                    placed = reference[[s + (plus if strand == "+" else minus) for plus, minus in self.offsets]]
                    inside = self.scanned.holds(contig, placed)
                    if not inside.any():
                        continue
                    mine = self.mine.holds(contig, placed[inside][:1])[0]
                    if unknown:  # too many N, as a genome scan skips such windows
                        skipped += int(mine)
                        continue
                    owned.append(mine)
                    pieces.append(sequence[s:s + self.size] if strand == "+" else
                                  reverse[len(sequence) - s - self.size:len(sequence) - s])
                    strands.append(strand)
                    readers.append(k)
                    # A site counts in the chunk holding its reference position, so no read is counted twice.
                    sites.append(np.where(self.mine.holds(contig, placed), placed, -1))
            if len(owned) > classified and owned[classified]:  # the read counts where its first window does
                read_bases += len(sequence)
                scanned += 1
        ids, lengths = tokenised(tokenizer, pieces, self.max_tokens)
        return {"reads": len(reads), "scanned_reads": scanned, "read_bases": read_bases, "short_reads": short,
                "read": readers,
                "skipped": skipped, "strand": strands,
                "sites": np.array(sites, dtype=np.int64).reshape(len(pieces), len(self.offsets)),
                "ids": ids, "lengths": lengths, "owned": np.array(owned, dtype=bool)}


def reference_positions(read) -> np.ndarray:
    """The reference position of each base of a read as stored (-1 where it aligns to none)."""
    reference = np.full(read.query_length, -1, dtype=np.int64)
    for q, r in read.get_aligned_pairs(matches_only=True):
        reference[q] = r
    return reference


class ReadBases(ReadWindows):
    """A per-base model's reads: each read tiled with cores that abut, read with flanks from the read
    (N past its ends), on both strands, so every base of it is scored once per strand (its A, C, G
    and T: N and other IUPAC codes get no score, as in a genome scan); a read is scanned when one of
    its aligned bases lies in the scanned regions, and peaks are called among those bases. Reads come
    in bins as ReadWindows's do."""

    def __init__(self, bam_path, reference, regions, ranges, scanner: DenseScanner, min_mapq: int, strands: str,
                 block_reads: int = 64):
        self.bam_path, self.reference, self.ranges, self.strands = bam_path, reference, ranges, strands
        self.scanned, self.mine = RegionIndex(regions), RegionIndex(ranges)
        self.tokenizer, self.core, self.flank = scanner.tokenizer, scanner.core, scanner.flank
        self.min_mapq, self.block_reads = min_mapq, block_reads

    def prepare(self, tokenizer, contig, reads) -> dict:
        sequences, windows, places, candidates, owned = [], [], [], [], []
        read_bases = scanned = 0
        for k, read in enumerate(reads):
            reference = reference_positions(read)
            inside = self.scanned.holds(contig, reference)
            if not inside.any():
                places.append(None)
                candidates.append(None)
                continue
            mine = self.mine.holds(contig, reference[inside][:1])[0]  # the read's windows are tallied here
            # A site counts in the chunk holding its reference position, so no read is counted twice.
            places.append(np.where(self.mine.holds(contig, reference), reference, -1))
            read_bases += read.query_length if mine else 0
            scanned += int(mine)
            bases = read.query_sequence.upper()
            # Peaks are called among the bases aligned inside the scanned regions, as a genome scan
            # calls them within its regions: soft clips, insertions and bases outside give context only.
            candidates.append(scored_bases(bases) & inside)
            padded = "N" * self.flank + bases + "N" * self.flank
            for start in range(0, read.query_length, self.core):
                end = min(read.query_length, start + self.core)
                piece = padded[start:end + 2 * self.flank]
                for strand in self.strands:
                    sequences.append(piece if strand == "+" else reverse_complement(piece))
                    windows.append((k, start, end, strand))
                    owned.append(mine)
        return {"reads": len(reads), "scanned_reads": scanned, "read_bases": read_bases, "sequences": sequences,
                "windows": windows, "places": places, "candidates": candidates,
                "encoded": encode_bases(tokenizer, sequences) if tokenizer and sequences else None,
                "owned": np.array(owned, dtype=bool)}


def window_hits(scanner: Scanner, item: dict, labels: list[int], threshold: float, batch_tokens: int, _):
    """A window classifier's hits in a block of reads, queued on the device: a function that gives
    them (see window_read_hits) once the device is done."""
    pending = scanner.launch(item["ids"], item["lengths"], batch_tokens)
    return lambda: window_read_hits(scanner, item, pending.result(), labels, threshold)


def window_read_hits(scanner: Scanner, item: dict, probabilities: np.ndarray, labels: list[int], threshold: float):
    """(read, position, strand, label, probability) of each window scoring at or above the threshold
    (in thousandths, as a genome scan compares), at its site; read: its place in the block."""
    for j, label in enumerate(labels):
        for row in np.flatnonzero(as_scores(probabilities[:, label]) >= threshold_score(threshold)):
            position = item["sites"][row, j]
            if position >= 0:
                yield (item["read"][row], int(position), item["strand"][row], scanner.labels[label],
                       float(probabilities[row, label]))


def base_hits(scanner: DenseScanner, item: dict, labels: list[int], threshold: float, batch_tokens: int, distances):
    """A per-base model's hits in a block of reads, queued on the device: a function that gives them
    (see base_read_hits) once the device is done."""
    pending = scanner.launch(item["encoded"], item["sequences"], batch_tokens)
    return lambda: base_read_hits(scanner, item, pending.result(), labels, threshold, distances)


def base_read_hits(scanner: DenseScanner, item: dict, probabilities: list[np.ndarray], labels: list[int],
                   threshold: float, distances):
    """The peaks of each read's scores (as a genome scan calls them, along the read), placed where
    their base aligns: (read, position, strand, label, probability), read its place in the block."""
    tracks = {}
    for p, (k, start, end, strand) in zip(probabilities, item["windows"]):
        track = tracks.setdefault((k, strand), np.zeros((len(item["places"][k]), p.shape[1]), dtype=np.float32))
        track[start:end] = p if strand == "+" else p[::-1]
    for (k, strand), track in tracks.items():
        for label in labels:
            name = scanner.labels[label]
            # No two bases of a read lie as far apart as its length: a longer distance calls the same peaks.
            caller = PeakCaller(threshold_score(threshold), min(distances[name], len(track)))
            caller.start("", 0)
            scores = as_scores(track[:, label])
            scores[~item["candidates"][k]] = -1  # neither called nor suppressing a neighbour
            caller.feed(0, scores, owned=True)
            caller.finish()
            for _, q, _ in caller.peaks:
                if item["places"][k][q] >= 0:
                    yield k, int(item["places"][k][q]), strand, name, float(track[q, label])


def scan_reads(scanner, bam_path, reference, regions, ranges, *, labels: list[int], threshold: float,
               stride: int | None, strands: str, distances: dict[str, int], batch_tokens: int, workers: int,
               min_mapq: int, min_reads: int, max_n: float, progress: bool) -> tuple[list[Call], Tally]:
    """Calls per reference site inside `ranges` (this chunk's part of the scanned `regions`): the reads
    in which a window classifier's window, or a per-base model's peak, calls a label there (a pair
    whose mates both call it counting once, as junctions count), with the site's mean probability
    over those reads."""
    if scanner.dense:
        dataset, hits = ReadBases(bam_path, reference, regions, ranges, scanner, min_mapq, strands), base_hits
    else:
        names = [scanner.labels[i] for i in labels]
        dataset = ReadWindows(bam_path, reference, regions, ranges, scanner, names, stride, min_mapq, strands, max_n)
        hits = window_hits
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=as_is,
                        prefetch_factor=4 if workers else None)
    # (contig, position, strand, label) → [fragments, reads, sum of probabilities]
    support = defaultdict(lambda: [0, 0, 0.0])
    fragments = Fragments()
    tally, reads, short = Tally(), 0, 0
    started = time.perf_counter()

    def launch(item):
        if "error" in item:
            raise UserError(item["error"])
        return hits(scanner, item, labels, threshold, batch_tokens, distances)

    def take(item, found):
        nonlocal reads, short
        # Blocks come in the order of their reads' starts, a bin's blocks all from its start.
        fragments.reach(item["contig"], item["start"])
        for k, position, strand, name, probability in found():
            entry = support[(item["contig"], position, strand, name)]
            entry[0] += fragments.first(item["names"][k], item["mates"][k], position, (strand, name))
            entry[1] += 1
            entry[2] += probability
        owned = item["owned"]
        tally.windows += int(owned.sum())
        tally.skipped += item.get("skipped", 0)
        tally.tokens += sum(len(ids) for (ids, _), o in zip(item["encoded"] or [], owned) if o) if scanner.dense \
            else int(item["lengths"][owned].sum())
        tally.bases += item["read_bases"]
        reads += item["scanned_reads"]
        short += item.get("short_reads", 0)
        bar.update(item["reads"])

    with tqdm(unit="read", disable=not progress) as bar:
        overlapped(watched(loader), launch, take)
    tally.seconds = time.perf_counter() - started
    # Reads fetched to reach the regions (their bins) but tallied for none of them (a per-base model: no
    # base aligned inside; a window classifier: no window's site inside) are not counted.
    log.info("scanned %d reads", reads)
    if short:
        log.warning("%d reads shorter than the model's %d bp window were not scanned (a per-base model scans reads of "
                    "any length)", short, scanner.window)
    return [Call(c, p, p + 1, label, score_of(total / n), strand, count, p)
            for (c, p, strand, label), (count, n, total) in support.items() if count >= min_reads], tally


def bam_lengths(bam_path, reference, reference_lengths: dict[str, int] | None, shown=None) -> dict[str, int]:
    """The BAM's contig lengths, of those the reference has (see check_reference). shown: the
    reference as the user named it, where `reference` is a copy made to read it."""
    with open_alignments(bam_path, reference) as bam:
        lengths = dict(zip(bam.references, bam.lengths))
        if not lengths:
            raise UserError(f"{bam_path}: no reference contigs in the header")
        if reference_lengths is not None:
            lengths = {contig: lengths[contig] for contig in check_reference(bam, reference_lengths, shown or reference)}
    return lengths

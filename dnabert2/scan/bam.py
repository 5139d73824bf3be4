"""Scanning aligned reads (BAM/CRAM): the read sequences themselves, with hits placed on the reference
through each alignment (spliced reads included) and counted per site; or the reference regions the
reads cover at or above some depth."""

import logging
import time
from collections import defaultdict

import numpy as np
from torch.utils.data import DataLoader, IterableDataset
from tqdm import tqdm

from ..errors import UserError
from ..sequences import aligned_reads, open_alignments, reverse_complement
from ..tokenizer import load_tokenizer
from .calls import Call, score_of
from .genome import Tally, _as_is, tokenised, worker_share
from .model import Scanner
from .plan import Grid, RegionIndex, merge_regions

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
    not counted), widened by `pad` on each side so sites at their edges get centred windows."""
    found = []
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
            found += [(contig, max(0, lo + int(a) - pad), min(lengths[contig], lo + int(b) + pad))
                      for a, b in zip(edges[::2], edges[1::2])]
    return merge_regions(found, {c: i for i, c in enumerate(lengths)})


class ReadWindows(IterableDataset):
    """Windows along each read's sequence (as stored: on the reference's forward strand) on both
    strands, with the reference position of each called label's site.

    Reads come in blocks of a bin (the READ_BIN bp their alignment starts in), each bin read once;
    a window is classified when one of its sites lands in the scanned regions, and its sites count
    only inside this chunk's ranges. What a block sends to the model thus depends on the bin and the
    regions, never on the chunking: a read meets the same batch-mates in every chunked run."""

    def __init__(self, bam_path, reference, regions, ranges, scanner: Scanner, names: list[str], stride: int,
                 min_mapq: int, block_reads: int = 256):
        self.bam_path, self.reference, self.ranges = bam_path, reference, ranges
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

    def blocks(self, bam):
        for contig, b in self.bins(bam):
            lo, hi = b * READ_BIN, (b + 1) * READ_BIN
            reads, sent = [], False
            for read in aligned_reads(bam, contig, lo, hi, self.min_mapq):
                if read.reference_start < lo:
                    continue  # the previous bin's
                reads.append(read)
                if len(reads) == self.block_reads:
                    yield contig, reads
                    reads, sent = [], True
            if reads or not sent:
                yield contig, reads

    def __iter__(self):
        tokenizer = load_tokenizer(self.tokenizer)
        with open_alignments(self.bam_path, self.reference) as bam:
            for _, (contig, reads) in worker_share(self.blocks(bam)):
                try:
                    yield self.prepare(tokenizer, contig, reads)
                except UserError as error:  # travels to the main process as data, not as a traceback
                    yield {"error": str(error)}

    def prepare(self, tokenizer, contig, reads) -> dict:
        pieces, strands, sites = [], [], []
        for read in reads:
            sequence = read.query_sequence.upper()
            reverse = reverse_complement(sequence)
            reference = np.full(len(sequence), -1, dtype=np.int64)
            for q, r in read.get_aligned_pairs(matches_only=True):
                reference[q] = r
            grid = Grid(contig, 0, len(sequence), self.size, self.stride)
            for i in range(len(grid)):
                s = grid.window_start(i)
                for strand in "+-":
                    placed = reference[[s + (plus if strand == "+" else minus) for plus, minus in self.offsets]]
                    if not self.scanned.holds(contig, placed).any():
                        continue
                    pieces.append(sequence[s:s + self.size] if strand == "+" else
                                  reverse[len(sequence) - s - self.size:len(sequence) - s])
                    strands.append(strand)
                    # A site counts in the chunk holding its reference position, so no read is counted twice.
                    sites.append(np.where(self.mine.holds(contig, placed), placed, -1))
        ids, lengths = tokenised(tokenizer, pieces, self.max_tokens)
        return {"contig": contig, "reads": len(reads), "strand": strands,
                "sites": np.array(sites, dtype=np.int64).reshape(len(pieces), len(self.offsets)),
                "ids": ids, "lengths": lengths}


def scan_reads(scanner: Scanner, bam_path, reference, regions, ranges, *, labels: list[int], threshold: float,
               stride: int, batch_tokens: int, workers: int, min_mapq: int, min_reads: int,
               progress: bool) -> tuple[list[Call], Tally]:
    """Calls per reference site inside `ranges` (this chunk's part of the scanned `regions`): reads
    whose windows score at or above the threshold for a label, with the site's mean probability over
    those reads."""
    names = [scanner.labels[i] for i in labels]
    dataset = ReadWindows(bam_path, reference, regions, ranges, scanner, names, stride, min_mapq)
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_as_is,
                        prefetch_factor=4 if workers else None)
    support = defaultdict(lambda: [0, 0.0])  # (contig, position, strand, label) → [reads, sum of probabilities]
    tally, reads = Tally(), 0
    started = time.perf_counter()
    with tqdm(unit="read", disable=not progress) as bar:
        for item in loader:
            if "error" in item:
                raise UserError(item["error"])
            if len(item["lengths"]):
                probabilities = scanner.probabilities(item["ids"], item["lengths"], batch_tokens)
                for j, label in enumerate(labels):
                    for row in np.flatnonzero(probabilities[:, label] >= threshold):
                        position = item["sites"][row, j]
                        if position >= 0:
                            entry = support[(item["contig"], int(position), item["strand"][row], names[j])]
                            entry[0] += 1
                            entry[1] += float(probabilities[row, label])
            tally.windows += len(item["lengths"])
            tally.tokens += int(item["lengths"].sum())
            tally.bases += len(item["lengths"]) * scanner.window
            reads += item["reads"]
            bar.update(item["reads"])
    tally.seconds = time.perf_counter() - started
    log.info("scanned %d reads", reads)
    return [Call(c, p, p + 1, label, score_of(total / n), strand, n, p)
            for (c, p, strand, label), (n, total) in support.items() if n >= min_reads], tally


def bam_lengths(bam_path, reference, reference_lengths: dict[str, int] | None) -> dict[str, int]:
    """The BAM's contig lengths, checked against the reference's."""
    with open_alignments(bam_path, reference) as bam:
        lengths = dict(zip(bam.references, bam.lengths))
    if not lengths:
        raise UserError(f"{bam_path}: no reference contigs in the header")
    if reference_lengths is not None:
        for contig, length in lengths.items():
            if reference_lengths.get(contig) != length:
                where = "is not in the reference" if contig not in reference_lengths else \
                    f"is {length} bp in the BAM but {reference_lengths[contig]} bp in the reference"
                raise UserError(f"{bam_path}: contig {contig!r} {where}")
    return lengths

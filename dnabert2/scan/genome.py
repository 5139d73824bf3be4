"""Scanning a genome: blocks of windows are read and tokenised in DataLoader workers (one block per
item, handed out round-robin so they come back in genome order) and classified in packed batches on
the main process, which writes one block's calls and scores while the device runs the next; they
stream out as blocks finish, so memory stays flat however large the genome. The loop serves window
scans (here) and dense scans (scan/dense.py) alike: each kind of scanner says how a block is read
(`reader`) and what its scores are (`block_scores`)."""

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from torch.utils.data import DataLoader, IterableDataset
from tqdm import tqdm

from ..devices import overlapped, watched
from ..errors import UserError
from ..sequences import Fasta, reverse_complement, too_many_n
from ..tokenizer import encode
from .calls import Call, Merger, score_of, threshold_score
from .model import Scanner
from .peaks import PeakCaller
from .plan import Block, BlockReader, as_is
from .tracks import Tracks

log = logging.getLogger(__name__)


def tokenised(tokenizer, pieces: list[str], max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    ids = encode(tokenizer, pieces, max_tokens)
    return (np.fromiter((t for row in ids for t in row), dtype=np.int64),
            np.array([len(row) for row in ids], dtype=np.int64))


class BlockWindows(BlockReader, IterableDataset):
    """Each block's windows on the strands asked for, windows with too many N dropped, tokenised."""

    def __init__(self, genome, blocks: list[Block], strands: str, tokenizer, max_tokens: int, max_n: float):
        super().__init__(genome, blocks, tokenizer)
        self.strands, self.max_tokens, self.max_n = strands, max_tokens, max_n

    def prepare(self, fasta: Fasta, tokenizer, block: Block) -> dict:
        begin, end = block.span
        sequence = fasta.fetch(block.grid.contig, begin, end)
        reverse = reverse_complement(sequence)
        size = block.grid.size
        pieces, index, strand = [], [], []
        for i, start in enumerate(block.starts):
            s = start - begin
            piece = sequence[s:s + size]
            if too_many_n(piece, self.max_n):
                continue
            for st in self.strands:
                pieces.append(piece if st == "+" else reverse[len(sequence) - s - size:len(sequence) - s])
                index.append(i)
                strand.append(st)
        ids, lengths = tokenised(tokenizer, pieces, self.max_tokens)
        return {"window": np.array(index, dtype=np.int64), "strand": strand, "ids": ids, "lengths": lengths,
                "windows": len(lengths), "tokens": int(lengths.sum()),
                "skipped": (len(block.starts) - len(set(index))) * len(self.strands)}  # per strand, as windows are


@dataclass
class Tally:
    """What a scan did, for its summary."""

    windows: int = 0
    skipped: int = 0
    tokens: int = 0
    bases: int = 0
    calls: dict = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self, scanner: Scanner) -> dict:
        seconds = max(self.seconds, 1e-9)
        return {"windows": self.windows, "windows_skipped_for_n": self.skipped, "tokens": self.tokens,
                "bases": self.bases, "window_bp": scanner.window, "calls": self.calls,
                "seconds": round(self.seconds, 3), "bp_per_second": round(self.bases / seconds),
                "window_bp_per_second": round(self.windows * scanner.window / seconds),
                "tokens_per_second": round(self.tokens / seconds), "device": str(scanner.device)}


class Calling:
    """Turns a scan's scores into calls: peaks by non-maximum suppression per label and strand, or with
    `merge` (window scans) overlapping or touching windows above the threshold merged into one region."""

    def __init__(self, scanner, threshold: float, distances: dict[str, int], merge: bool):
        self.scanner, self.threshold, self.distances, self.merge = scanner, threshold_score(threshold), distances, merge
        self.merger, self.callers, self.grid = Merger(), {}, None

    def add(self, block: Block, owned: bool, scores: dict) -> None:
        """A block's scores: (label, strand) → (positions, track ends, values), positions ascending."""
        if self.merge:
            for (name, strand), (positions, _, values) in scores.items():
                for site, value in zip(positions.tolist(), values.tolist()):
                    if value >= self.threshold:
                        start, end = self.scanner.call_span(name, strand, site)
                        self.merger.add(Call(block.grid.contig, start, end, name, value, strand, 1, site))
            return
        if block.grid != self.grid:
            for caller in self.callers.values():
                caller.finish()
            self.grid = block.grid
        for key, (positions, _, values) in scores.items():
            if not len(positions):
                continue
            caller = self.callers.setdefault(key, PeakCaller(self.threshold, self.distances[key[0]]))
            if caller.contig is None:  # nothing before its first scores counts (other chunks' bases are far)
                caller.start(block.grid.contig, int(positions[0]))
            dense = np.full(positions[-1] - positions[0] + 1, -1, dtype=np.int32)
            dense[positions - positions[0]] = values
            caller.feed(int(positions[0]), dense, owned)

    def finish(self) -> list[Call]:
        if self.merge:
            return self.merger.finish()
        calls = []
        for (name, strand), caller in self.callers.items():
            caller.finish()
            for contig, site, value in caller.peaks:
                start, end = self.scanner.call_span(name, strand, site)
                calls.append(Call(contig, start, end, name, value, strand, 1, site))
        return calls


def scan_blocks(scanner, dataset, block_scores, planned: list[tuple[Block, bool]], *, labels: list[int],
                batch_tokens: int, workers: int, tracks: Tracks | None, calling: Calling, progress: bool) -> Tally:
    """Score every window of the planned blocks (owned ones, and other chunks' blocks whose scores
    the peaks at this chunk's ends depend on), read by `dataset` and scored by `block_scores` (a
    window or a dense scan's), feeding calls and tracks; returns a tally."""
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=as_is,
                        prefetch_factor=4 if workers else None, persistent_workers=False)
    tally = Tally()
    started = time.perf_counter()

    def launch(item):
        if "error" in item:
            raise UserError(item["error"])
        return block_scores(scanner, planned[item["item"]][0], item, batch_tokens, labels)

    def take(item, scores):
        block, owned = planned[item["item"]]
        scores = scores()
        calling.add(block, owned, scores)
        if not owned:
            return
        if tracks is not None:
            for (name, strand), (positions, ends, values) in scores.items():
                tracks.add_many(name, strand, block.grid.contig, positions, ends, values, join=scanner.dense)
        tally.windows += item["windows"]
        tally.skipped += item["skipped"]
        tally.tokens += item["tokens"]
        tally.bases += block.bases
        bar.update(block.last - block.first)

    with tqdm(total=sum(b.last - b.first for b, owned in planned if owned), unit="window", disable=not progress) as bar:
        overlapped(watched(loader), launch, take)
    tally.seconds = time.perf_counter() - started
    return tally


def window_scores(scanner: Scanner, block: Block, item: dict, batch_tokens: int, labels: list[int]):
    """A window scan's scores of a block, queued on the device: a function that gives them (see
    window_track) once the device is done."""
    pending = scanner.launch(item["ids"], item["lengths"], batch_tokens)
    return lambda: window_track(scanner, block, item, pending.result(), labels)


def window_track(scanner: Scanner, block: Block, item: dict, probabilities: np.ndarray, labels: list[int]) -> dict:
    """Each window's probability at its label's site, as a track value reaching to where the next
    window's site lies (at most one stride), over bases a window read: the last went past the scanned
    region's end, and a stride longer than a window past the window's."""
    size, starts = block.grid.size, block.starts
    found = {}
    for row, (i, strand) in enumerate(zip(item["window"], item["strand"])):
        start = starts[i]
        following = block.next_start(i)
        step = following - start if following is not None else min(block.grid.stride, size)
        for label in labels:
            name = scanner.labels[label]
            site = scanner.site(name, start, strand)
            # Where windows leave bases between them (a stride longer than a window), none is read.
            end = min(site + step, start + size if step > size else block.grid.end)
            found.setdefault((name, strand), []).append((site, end, score_of(float(probabilities[row, label]))))
    return {key: tuple(np.array(column, dtype=np.int64) for column in zip(*rows)) for key, rows in found.items()}

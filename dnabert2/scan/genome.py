"""Scanning a genome: blocks of windows are read and tokenised in DataLoader workers (one block per
item, handed out round-robin so they come back in genome order) and classified in packed batches on
the main process; calls and per-window scores stream out as blocks finish, so memory stays flat
however large the genome."""

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from ..errors import UserError
from ..sequences import Fasta, reverse_complement
from ..tokenizer import encode, load_tokenizer
from .calls import Call, Merger, score_of
from .model import Scanner
from .plan import Block
from .tracks import Tracks

log = logging.getLogger(__name__)


def _as_is(item):
    return item


def worker_share(items):
    """The items this DataLoader worker prepares: every W-th, so that the loader, which takes one
    item from each worker in turn, returns them in order."""
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info else (0, 1)
    return ((k, item) for k, item in enumerate(items) if k % workers == worker)


def tokenised(tokenizer, pieces: list[str], max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    ids = encode(tokenizer, pieces, max_tokens)
    return (np.fromiter((t for row in ids for t in row), dtype=np.int64),
            np.array([len(row) for row in ids], dtype=np.int64))


class BlockWindows(IterableDataset):
    """Each block's windows on the strands asked for, windows with too many N dropped, tokenised."""

    def __init__(self, genome, blocks: list[Block], strands: str, tokenizer, max_tokens: int, max_n: float):
        self.genome, self.blocks, self.strands = genome, blocks, strands
        self.tokenizer, self.max_tokens, self.max_n = tokenizer, max_tokens, max_n

    def __iter__(self):
        with Fasta(self.genome) as fasta:
            tokenizer = load_tokenizer(self.tokenizer)
            for _, block in worker_share(self.blocks):
                try:
                    yield self.prepare(fasta, tokenizer, block)
                except UserError as error:  # travels to the main process as data, not as a traceback
                    yield {"error": str(error)}

    def prepare(self, fasta: Fasta, tokenizer, block: Block) -> dict:
        begin, end = block.span
        sequence = fasta.fetch(block.grid.contig, begin, end)
        reverse = reverse_complement(sequence)
        size, limit = block.grid.size, self.max_n * block.grid.size
        pieces, index, strand = [], [], []
        for i, start in enumerate(block.starts):
            s = start - begin
            piece = sequence[s:s + size]
            if size - sum(piece.count(b) for b in "ACGT") > limit:
                continue
            for st in self.strands:
                pieces.append(piece if st == "+" else reverse[len(sequence) - s - size:len(sequence) - s])
                index.append(i)
                strand.append(st)
        ids, lengths = tokenised(tokenizer, pieces, self.max_tokens)
        return {"block": block.index, "window": np.array(index, dtype=np.int64), "strand": strand,
                "ids": ids, "lengths": lengths, "skipped": len(block.starts) - len(set(index))}


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


def scan_blocks(scanner: Scanner, genome, blocks: list[Block], *, strands: str, labels: list[int], threshold: float,
                batch_tokens: int, workers: int, max_n: float, bedgraph: Tracks | None, lengths: dict[str, int],
                progress: bool) -> tuple[list[Call], Tally]:
    """Classify every window of `blocks`; returns the merged calls and a tally."""
    dataset = BlockWindows(genome, blocks, strands, scanner.folder / "tokenizer.json", scanner.max_tokens, max_n)
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_as_is,
                        prefetch_factor=4 if workers else None, persistent_workers=False)
    merger, tally = Merger(), Tally()
    started = time.perf_counter()
    with tqdm(total=sum(b.last - b.first for b in blocks), unit="window", disable=not progress) as bar:
        for item in loader:
            if "error" in item:
                raise UserError(item["error"])
            block = blocks[item["block"] - blocks[0].index] if blocks else None
            probabilities = scanner.probabilities(item["ids"], item["lengths"], batch_tokens)
            _collect(scanner, block, item, probabilities, labels, threshold, merger, bedgraph, lengths)
            tally.windows += len(item["lengths"])
            tally.skipped += item["skipped"]
            tally.tokens += int(item["lengths"].sum())
            tally.bases += block.bases
            bar.update(block.last - block.first)
    tally.seconds = time.perf_counter() - started
    return merger.finish(), tally


def _collect(scanner, block, item, probabilities, labels, threshold, merger, bedgraph, lengths) -> None:
    contig, size, starts = block.grid.contig, block.grid.size, block.starts
    for row, (i, strand) in enumerate(zip(item["window"], item["strand"])):
        start = starts[i]
        following = block.next_start(i)
        step = following - start if following is not None else min(block.grid.stride, size)
        for label in labels:
            name = scanner.labels[label]
            p = float(probabilities[row, label])
            site = scanner.site(name, start, strand)
            if bedgraph is not None:
                bedgraph.add(name, strand, contig, site, min(site + step, lengths[contig]), p)
            if p >= threshold:
                merger.add(Call(contig, start, start + size, name, score_of(p), strand, 1, site))

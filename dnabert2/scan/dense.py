"""Dense scanning with a per-base model (a fine-tuned dense head, or the CNN baseline): each region is
tiled with cores that abut, each read with its flanks as context (N past a contig's end), so every
base is scored once per strand. Minus-strand windows are read reverse-complemented, as the model was
trained, and their scores put back in forward coordinates."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset

from .. import load_model
from ..bases.inputs import dense_batch, encode_bases
from ..bases.metrics import as_scores
from ..devices import Pending, autocast, compiled, inference_weights
from ..errors import UserError
from ..sequences import Fasta, reverse_complement
from ..tasks.description import read_description
from ..tokenizer import load_tokenizer
from .model import is_per_base, load_scanner, model_labels, scanning_device
from .plan import Block, BlockReader


PADDED_TO = 256  # bp: a window shorter than the scanner's is padded to a multiple of it


@dataclass
class DenseScanner:
    model: torch.nn.Module
    folder: Path
    labels: list[str]
    core: int  # bp scored per window
    flank: int  # bp of context on each side
    device: torch.device
    precision: str
    tokenizer: Path | None  # None: the model reads bases only
    compile: bool = False
    dense = True

    def __post_init__(self):
        self.model = compiled(inference_weights(self.model, self.precision), self.compile)
        self.autocast = autocast(self.device, self.precision)

    @property
    def window(self) -> int:
        return self.core + 2 * self.flank

    @property
    def max_tokens(self) -> int:
        """Tokens a window can take at most (one base each)."""
        return self.window + 2

    def call_span(self, label: str, strand: str, site: int) -> tuple[int, int]:
        return site, site + 1

    def probabilities(self, encoded, sequences: list[str], batch_tokens: int) -> list[np.ndarray]:
        """Per window, its core's class probabilities (core bases, K), in batches of at most
        batch_tokens tokens (bases / 4 for a model without tokens)."""
        return self.launch(encoded, sequences, batch_tokens).result()

    @staticmethod
    def sizes(encoded, sequences: list[str]) -> list[int]:
        """What each window counts against batch tokens."""
        return [len(ids) for ids, _ in encoded] if encoded is not None else [len(q) // 4 for q in sequences]

    @torch.inference_mode()
    def launch(self, encoded, sequences: list[str], batch_tokens: int) -> Pending:
        """`probabilities`, queued on the device."""
        sizes = self.sizes(encoded, sequences)
        parts, first = [], 0
        while first < len(sequences):
            last, used = first + 1, sizes[first]
            while last < len(sequences) and used + sizes[last] <= batch_tokens:
                used += sizes[last]
                last += 1
            # Convolutions prepare anew for each input length they meet (oneDNN on a CPU): windows of
            # stretches shorter than a core (a draft assembly's contigs, thousands) are padded to a few lengths.
            longest = max(len(q) for q in sequences[first:last])
            length = min(self.window, -(-longest // PADDED_TO) * PADDED_TO)
            with self.autocast:
                part = encoded[first:last] if encoded is not None else None
                logits = self.model(**dense_batch(part, sequences[first:last], self.device, length=length)).logits
            parts.append(logits.float().softmax(-1))  # (windows, length, K)
            first = last

        def cores(arrays):
            windows = (p for array in arrays for p in array)
            return [p[self.flank:len(q) - self.flank] for p, q in zip(windows, sequences)]

        return Pending(parts, cores)


def load_any_scanner(folder, **options):
    """The scanner of any fine-tuned model folder: per-base (a dense head, the CNN) or a window classifier."""
    return (load_dense_scanner if is_per_base(Path(folder)) else load_scanner)(folder, **options)


def read_tokenizer(scanner):
    """The tokenizer a scanner's model reads; None for one that reads bases only (the CNN)."""
    return load_tokenizer(scanner.tokenizer) if scanner.tokenizer else None


def load_dense_scanner(folder, *, window: int | None = None, device="auto", dtype: str = "auto",
                       compile: bool = False) -> DenseScanner:
    """A per-base model folder (a dense head, or the CNN baseline) ready to scan; window: bp, flanks
    included (default the task's)."""
    folder = Path(folder)
    device, precision = scanning_device(folder, device, dtype)
    model = load_model(folder, head="dense", device=device, trained=True)  # the facade knows the CNN baseline's folder
    task = read_description(folder)
    if not {"core_bp", "flank_bp", "labels"} <= set(task):
        raise UserError(f"{folder}: a per-base model without the task.json of its dense task (core_bp, flank_bp, "
                        "labels)")
    scored = model.config["num_labels"] if isinstance(model.config, dict) else model.config.num_labels  # the CNN's: JSON
    labels = model_labels(folder, task, scored)
    flank = task["flank_bp"]
    core = task["core_bp"] if window is None else window - 2 * flank
    if core < 1:
        raise UserError(f"--window {window} leaves no core between the model's two {flank} bp flanks; give a window "
                        f"longer than {2 * flank} bp")
    tokenizer = folder / "tokenizer.json" if (folder / "tokenizer.json").is_file() else None
    return DenseScanner(model, folder, labels, core, flank, device, precision, tokenizer, compile)


NUCLEOTIDES = np.frombuffer(b"ACGT", dtype=np.uint8)


def scored_bases(sequence: str) -> np.ndarray:
    """Which bases of an upper-case sequence a per-base model scores: A, C, G and T, not N or other
    IUPAC codes."""
    return np.isin(np.frombuffer(sequence.encode(), dtype=np.uint8), NUCLEOTIDES)


class DenseBlocks(BlockReader, IterableDataset):
    """Each block's cores with their flanks, on the strands asked for, tokenised with the token of
    every base (tokenizer None: bases only). Every A, C, G and T is scored, however many N (or other
    IUPAC codes) lie around it; those are not, and a core of nothing else is not read at all."""

    def __init__(self, genome, blocks: list[Block], strands: str, tokenizer, flank: int):
        super().__init__(genome, blocks, tokenizer)
        self.strands, self.flank = strands, flank

    def prepare(self, fasta: Fasta, tokenizer, block: Block) -> dict:
        contig, flank = block.grid.contig, self.flank
        sequences, cores, known, strands, skipped = [], [], [], [], 0
        for i in range(block.first, block.last):
            start, end = block.grid.core(i)
            first = block.grid.read(i)
            sequence = fasta.fetch_padded(contig, first - flank, end + flank)
            bases = scored_bases(sequence[flank + start - first:flank + end - first])
            if not bases.any():
                skipped += len(self.strands)  # counted as `windows` is, once per strand
                continue
            for strand in self.strands:
                sequences.append(sequence if strand == "+" else reverse_complement(sequence))
                cores.append((first, start, end))
                known.append(bases)
                strands.append(strand)
        encoded = encode_bases(tokenizer, sequences) if tokenizer else None
        return {"sequences": sequences, "encoded": encoded, "cores": cores, "known": known, "strand": strands,
                "windows": len(sequences), "tokens": sum(len(ids) for ids, _ in encoded) if tokenizer else 0,
                "skipped": skipped}


def dense_scores(scanner: DenseScanner, block: Block, item: dict, batch_tokens: int, labels: list[int]):
    """A dense scan's scores of a block, queued on the device: a function that gives them (see
    dense_track) once the device is done."""
    pending = scanner.launch(item["encoded"], item["sequences"], batch_tokens)
    return lambda: dense_track(scanner, item, pending.result(), labels)


def dense_track(scanner: DenseScanner, item: dict, probabilities: list[np.ndarray], labels: list[int]) -> dict:
    """Every base's probability of each label, on each strand, in forward coordinates (N and other
    IUPAC codes have none)."""
    rows = {}
    for p, (first, start, end), known, strand in zip(probabilities, item["cores"], item["known"], item["strand"]):
        forward = (p if strand == "+" else p[::-1])[start - first:]  # the bases before `start` are another core's
        rows.setdefault(strand, []).append((np.arange(start, end, dtype=np.int64)[known], forward[known]))
    found = {}
    for strand, parts in rows.items():
        positions = np.concatenate([q for q, _ in parts])
        values = np.concatenate([v for _, v in parts])
        for label in labels:
            scores = as_scores(values[:, label])
            found[(scanner.labels[label], strand)] = (positions, positions + 1, scores)
    return found


def dense_reader(scanner: DenseScanner, genome, blocks: list[Block], strands: str) -> DenseBlocks:
    return DenseBlocks(genome, blocks, strands, scanner.tokenizer, scanner.flank)


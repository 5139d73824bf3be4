"""Shared by the GPU benchmarks: timing, and token lengths of real DNA under a BPE vocabulary."""

import math
import random
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example" / "ce1pct.fa.gz"


def timed(fn, device: torch.device, repeats: int = 20, warmup: int = 3) -> float:
    """Median seconds per call of fn()."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def tokenizer_for(genome: Path, path: str | None):
    """The given tokenizer.json, or a 4,096-token vocabulary learned on the genome in a few seconds
    (the device machine has no copy of ../shared)."""
    from dnabert2 import load_tokenizer
    from dnabert2.sequences import Fasta
    from dnabert2.vocab import sample_windows, train_tokenizer

    if path:
        return load_tokenizer(path)
    with Fasta(genome) as fasta:
        return train_tokenizer(sample_windows([fasta], 1000, 2000, seed=0), vocab_size=4096)


def genome_windows(genome: Path, tokenizer, count: int, min_bp: int, max_bp: int, seed: int = 0) -> list[list[int]]:
    """Token ids ([CLS] … [SEP]) of `count` windows of the genome, their lengths in bp drawn
    log-uniformly between min_bp and max_bp."""
    from dnabert2.sequences import Fasta

    rng = random.Random(seed)
    with Fasta(genome) as fasta:
        contigs = [c for c, n in fasta.lengths.items() if n > max_bp]
        sequences = []
        while len(sequences) < count:
            size = round(math.exp(rng.uniform(math.log(min_bp), math.log(max_bp))))
            contig = rng.choice(contigs)
            start = rng.randrange(fasta.lengths[contig] - size)
            sequence = fasta.fetch(contig, start, start + size)
            if "N" not in sequence:
                sequences.append(sequence)
    return [e.ids for e in tokenizer.encode_batch(sequences)]


def warm_scan(model: Path, out: Path, fasta, **options) -> dict:
    """scan()'s report, after an untimed scan of the genome's first 50 kb with the same model and
    options: on a GPU the first batches of each length compile and tune the kernels, a cost a genome
    pays once and a short benchmark would otherwise count."""
    from dnabert2.scan import scan
    from dnabert2.sequences import Fasta

    with Fasta(fasta) as genome:
        contig, length = next(iter(genome.lengths.items()))
    start = out.with_name(f"{out.stem}.warm.bed")
    start.write_text(f"{contig}\t0\t{min(length, 50_000)}\n")
    scan(model, out.with_name(f"{out.stem}.warm.calls.bed"), fasta=fasta, **{**options, "contigs": None,
                                                                               "regions": start})
    return scan(model, out, fasta=fasta, **options)


def scan_parser(doc: str, workers: int):
    """The options the scanning benchmarks share: where they run, what they scan, with which model size."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="base")
    parser.add_argument("--genome", default=str(EXAMPLE))
    parser.add_argument("--contigs", nargs="+")
    parser.add_argument("--tokenizer", help="tokenizer.json (default: learn one on the genome)")
    parser.add_argument("--window", type=int, default=400, help="the window scan's window")
    parser.add_argument("--workers", type=int, default=workers)
    parser.add_argument("--batch-tokens", type=int)
    return parser


SPLICE_LABELS = {"0": "neither", "1": "donor", "2": "acceptor"}


def dense_splice_folder(model, tokenizer, folder: Path, core: int, flank: int) -> Path:
    """`model`, a per-base model of three labels, saved as fine-tuning on `tasks splice --dense` leaves
    one: weights, tokenizer, and the task.json that gives the scan its cores and flanks."""
    import json

    from dnabert2.model import save_model

    folder = save_model(model, folder, tokenizer)
    (folder / "task.json").write_text(json.dumps({"task": "splice", "dense": True, "core_bp": core, "flank_bp": flank,
                                                  "labels": SPLICE_LABELS}))
    (folder / "finetune.json").write_text(json.dumps({"head": "dense", "num_labels": 3}))
    return folder

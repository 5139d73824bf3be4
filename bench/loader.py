"""Pretraining data feed: tokens/s one DataLoader worker delivers (drawing windows, tokenising,
masking, packing), measured in one process with the tokenizer held to one thread, as in a worker.

    python bench/loader.py [--genome FASTA] [--tokenizer tokenizer.json] [--batch 256] [--tokens 128]

The genome is read as `dnabert2 download` writes it (bgzip with indices). Record the figure in
BENCHMARKS.md with the machine and date; the goal is 500 k tokens/s per worker.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers starts its thread pool
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EXAMPLE, tokenizer_for  # noqa: E402

from dnabert2.pretrain.data import PretrainSteps, WindowSampler, WindowSpec  # noqa: E402
from dnabert2.sequences import write_indexed_fasta  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genome", default=str(EXAMPLE))
    parser.add_argument("--tokenizer", help="tokenizer.json (default: learn one on the genome)")
    parser.add_argument("--batch", type=int, default=256, help="windows per step")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per window")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    tokenizer = tokenizer_for(Path(args.genome), args.tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        genome = Path(tmp) / "genome.fa.gz"
        write_indexed_fasta(Path(args.genome), genome)
        window = WindowSpec(tokens=args.tokens)
        started = time.perf_counter()
        steps = PretrainSteps(WindowSampler([genome], None, window.draw_bp), tokenizer, window, args.batch, 10**9, 0)
        setup = time.perf_counter() - started
        steps[0]
        started, tokens = time.perf_counter(), 0
        for step in range(1, args.steps + 1):
            tokens += sum(len(batch["input_ids"]) for batch in steps[step])
        seconds = time.perf_counter() - started
    print(f"genome {args.genome}, {args.batch} windows x {args.tokens} tokens, one thread; set-up {setup:.2f} s")
    print(f"| worker | tokens/s |\n|---|---|\n| one DataLoader worker | {tokens / seconds:,.0f} |")


if __name__ == "__main__":
    main()

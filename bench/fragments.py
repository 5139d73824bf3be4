"""A draft assembly against one contig: genome bp/s of a dense `dnabert2 scan` over the first --bp of a
genome's first contig, whole and cut into pieces of 200 to 1,500 bp (seeded), as the scaffolds of a
draft assembly or the sequences of a transcriptome are. Each piece is read with its own flanks and
its windows end where it ends, so the pieces' windows come in many lengths.

    python bench/fragments.py --model results/finetune/ce1pct_splice_cnn \\
        --genome ../shared/data/genomes/ecoli_k12_mg1655.fna.gz

Any per-base model folder (a CNN baseline, a dense fine-tune). Prints a table; record it in
BENCHMARKS.md with the device and date.
"""

import argparse
import random
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import warm_scan  # noqa: E402

from dnabert2.sequences import Fasta  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--genome", required=True)
    parser.add_argument("--bp", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    with Fasta(args.genome) as genome:
        contig = next(iter(genome.lengths))
        sequence = genome.fetch(contig, 0, args.bp)
    rng, pieces, start = random.Random(args.seed), [], 0
    while start < len(sequence):
        end = start + rng.randint(200, 1500)
        pieces.append(sequence[start:end])
        start = end
    print(f"device: {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}; {args.model}; "
          f"{contig}:0-{len(sequence)} of {args.genome}")
    print("| layout | contigs | windows | genome bp/s |\n|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for layout, contigs in (("one contig", [sequence]), ("pieces of 200-1,500 bp", pieces)):
            fasta = Path(tmp) / f"{len(contigs)}.fa"
            fasta.write_text("".join(f">piece{i}\n{q}\n" for i, q in enumerate(contigs)))
            report = warm_scan(args.model, Path(tmp) / "calls.bed", fasta, device=args.device, workers=args.workers)
            print(f"| {layout} | {len(contigs):,} | {report['windows']:,} | {report['bp_per_second']:,} |")


if __name__ == "__main__":
    main()

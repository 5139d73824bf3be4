"""Vocabulary benchmark: learning a 4,096-token BPE vocabulary from the E. coli K-12 genome, and
encoding speed on one core, beside the released DNABERT-2 tokenizer on the same windows.

    python bench/vocab.py [--genome FASTA] [--released tokenizer.json]

Prints a table; figures go to BENCHMARKS.md with the machine and date."""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def encode_speed(tokenizer_path: str, genome: str, window: int) -> None:
    """Child process (one Rayon thread): bp/s and bp/token over every window of the genome."""
    from dnabert2 import load_tokenizer
    from dnabert2.sequences import Fasta, genome_windows

    tokenizer = load_tokenizer(tokenizer_path)
    with Fasta(genome) as fasta:
        sequences = [w.sequence for w in genome_windows(fasta, window, window, strands="+")]
    tokenizer.encode_batch(sequences[:100])  # warm-up
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        encodings = tokenizer.encode_batch(sequences, add_special_tokens=False)
        best = min(best, time.perf_counter() - started)
    bases = sum(map(len, sequences))
    tokens = sum(len(e.ids) for e in encodings)
    print(f"{bases / best / 1e6:.2f} {bases / tokens:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--genome", default=str(SHARED / "genomes/ecoli_k12_mg1655.fna.gz"))
    parser.add_argument("--released", default=str(SHARED / "tokenizers/dnabert2_117m_tokenizer.json"))
    args = parser.parse_args()

    from dnabert2.vocab import learn_vocabulary

    with tempfile.TemporaryDirectory() as tmp:
        ours = Path(tmp) / "tokenizer.json"
        started = time.perf_counter()
        report = learn_vocabulary([args.genome], ours, vocab_size=4096, seed=0)
        total = time.perf_counter() - started
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; genome {Path(args.genome).name}")
        print(f"learn 4096-token vocabulary: {total:.2f} s in all ({report['training_seconds']} s BPE training "
              f"on {report['training_bp'] / 1e6:.2f} Mbp), held-out {report['heldout_bp_per_token']} bp/token")
        print(f"{'tokenizer':<22}{'window':>8}{'Mbp/s (1 core)':>16}{'bp/token':>10}")
        for name, path in (("dnabert2 (learned)", ours), ("released DNABERT-2", args.released)):
            for window in (400, 1000):
                result = subprocess.run(
                    [sys.executable, __file__, "--encode", str(path), args.genome, str(window)],
                    env={**os.environ, "RAYON_NUM_THREADS": "1"}, capture_output=True, text=True, check=True,
                )
                speed, bp_per_token = result.stdout.split()
                print(f"{name:<22}{window:>8}{speed:>16}{bp_per_token:>10}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--encode":
        encode_speed(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()

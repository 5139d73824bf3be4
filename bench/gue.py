"""Fine-tuning on real labelled data: the test MCC of a model fine-tuned from a pretrained checkpoint,
of the same architecture from random initialisation, and of the k-mer baseline, per task.

    python bench/gue.py --model results/pretrain/tiny [--tasks uci_splice cnnprom_ecoli ...] [--full]

Tasks (../shared/data): the UCI primate splice junctions (3 classes), CNNProm promoter sets (E. coli,
B. subtilis, Arabidopsis TATA and non-TATA against non-promoters; random 80/10/10 splits, seeded)
and promoter and splice tasks built from the ce1pct genome and its annotation (split by contig).
Prints a Markdown table; record it in BENCHMARKS.md with the machine and date.
"""

import argparse
import csv
import gzip
import tempfile
from pathlib import Path

import torch
from Bio import SeqIO

from dnabert2 import load_model, load_tokenizer
from dnabert2.evaluate import EvaluateSettings, evaluate, write_tables
from dnabert2.finetune import FinetuneSettings
from dnabert2.model import build_model, save_model
from dnabert2.sequences import write_indexed_fasta
from dnabert2.tasks.build import build_task
from dnabert2.tasks.gue import random_split

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CNNPROM = DATA / "classification" / "cnnprom"
CNNPROM_TASKS = {"cnnprom_ecoli": ("Ecoli_prom", "Ecoli_non_prom"), "cnnprom_bacillus": ("Bacillus_prom", "Bacillus_non_prom"),
                 "cnnprom_arabidopsis_tata": ("Arabidopsis_tata", "Arabidopsis_non_prom"),
                 "cnnprom_arabidopsis_non_tata": ("Arabidopsis_non_tata", "Arabidopsis_non_prom_big")}


def fasta_sequences(name: str) -> list[str]:
    with gzip.open(CNNPROM / f"{name}.fa.gz", "rt") as handle:
        return [str(r.seq).upper() for r in SeqIO.parse(handle, "fasta")]


def build_tasks(root: Path, names: list[str]) -> dict[str, Path]:
    tasks = {}
    for name in names:
        if name == "uci_splice":
            with open(DATA / "classification" / "uci" / "uci_splice_statlog.csv", newline="") as handle:
                pairs = [(r["sequence"].upper(), int(r["label"])) for r in csv.DictReader(handle)]
            tasks[name] = random_split([p for p in pairs if set(p[0]) <= set("ACGTN")], root / name)
        elif name in CNNPROM_TASKS:
            positive, negative = CNNPROM_TASKS[name]
            pairs = [(s, 1) for s in fasta_sequences(positive)] + [(s, 0) for s in fasta_sequences(negative)]
            tasks[name] = random_split([p for p in pairs if set(p[0]) <= set("ACGTN")], root / name)
        elif name in ("ce1pct_promoter", "ce1pct_splice"):
            genome = root / "ce1pct.fa.gz"
            if not genome.exists():
                write_indexed_fasta(DATA / "genomes" / "ce1pct.fa.gz", genome)
            build_task(name.split("_")[1], genome, DATA / "genomes" / "ce1pct.gff3.gz", root / name)
            tasks[name] = root / name
        else:
            raise SystemExit(f"unknown task {name}")
    return tasks


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="pretrained model folder")
    parser.add_argument("--tasks", nargs="+", default=["uci_splice", *CNNPROM_TASKS, "ce1pct_promoter", "ce1pct_splice"])
    parser.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--baselines", nargs="*", default=["kmer", "cnn"], choices=["kmer", "cnn"])
    parser.add_argument("--out", type=Path, default=Path("gue-bench.tsv"))
    args = parser.parse_args()

    training = FinetuneSettings(method="full" if args.full else "lora", epochs=args.epochs, seeds=args.seeds, lr=args.lr,
                                device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tasks = build_tasks(root, args.tasks)
        pretrained = load_model(args.model, head="mlm")
        torch.manual_seed(0)
        random_dir = root / f"{args.model.name}-random-init"
        save_model(build_model(pretrained.config, "mlm"), random_dir, load_tokenizer(args.model))
        rows = evaluate(args.model, tasks, args.out, EvaluateSettings(baseline=args.baselines), training)
        rows += evaluate(random_dir, tasks, root / "random.tsv", EvaluateSettings(baseline=[]), training)
    write_tables(rows, args.out)
    print(args.out.with_suffix(".md").read_text(), end="")


if __name__ == "__main__":
    main()

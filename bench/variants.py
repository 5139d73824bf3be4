"""Variant effects on real splice sites, and the speed of `dnabert2 variants`.

For every annotated canonical donor (GT) and acceptor (AG) on one contig, an SNV on each base of the
dinucleotide, and beside each a control SNV at a random offset within ±50 bp of the same site (the
window the scores look at); each model scores both sets, and the table compares the loss of the site's
label (DS_DL for donors, DS_AL for acceptors). Then a VCF of random SNVs spread along the contig is
scored to time the command. Every run of the command pays a start-up (Python, model, genome) that does
not grow with the VCF, so each model also scores a VCF of one SNV: that run's time t₁ is reported as
the start-up, and a VCF of N SNVs taking t_N seconds as (N − 1) / (t_N − t₁) variants/s.

    python bench/variants.py --genome example/ce1pct.fa.gz --annotation example/ce1pct.gff3.gz --contig IV \\
        --model cnn=/tmp/bench/splice/cnn --model dense=/tmp/bench/splice/pretrained --out /tmp/bench/variants

On a GPU, the speed of a base-preset model (random weights: the speed does not depend on them, and
their losses mean nothing, so only the speed table is printed):

    python bench/variants.py --genome example/ce1pct.fa.gz --annotation example/ce1pct.gff3.gz --contig IV \
        --preset base --device cuda --random-snvs 20000 --out /tmp/bench/variants

Prints Markdown tables; record them in BENCHMARKS.md with the machine and date.
"""

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pysam
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dense_splice_folder, tokenizer_for  # noqa: E402

from dnabert2.sequences import Fasta, read_annotation, reverse_complement  # noqa: E402

OTHER = "ACGT"
LOSS = {"donor": "DS_DL", "acceptor": "DS_AL"}


def dinucleotide(site) -> list[int]:
    """The two bases of a donor's GT or an acceptor's AG, in forward coordinates."""
    step = 1 if site.strand == "+" else -1
    return [site.position, site.position + step] if site.kind == "donor" else [site.position - step, site.position]


def build_vcfs(genome: Path, annotation: Path, contig: str, out: Path, random_snvs: int, seed: int):
    rng = random.Random(seed)
    sites = [s for s in read_annotation(annotation).splice_sites() if s.contig == contig]
    disrupting, controls = [], []
    with Fasta(genome) as fasta:
        length = fasta.lengths[contig]

        def snv(position, name):
            ref = fasta.fetch(contig, position, position + 1)
            return position, name, ref, rng.choice([b for b in OTHER if b != ref])

        for i, site in enumerate(sites):
            bases = dinucleotide(site)
            pair = "".join(fasta.fetch(contig, p, p + 1) for p in sorted(bases))
            pair = pair if site.strand == "+" else reverse_complement(pair)
            if pair != {"donor": "GT", "acceptor": "AG"}[site.kind]:
                continue  # non-canonical sites are left out
            for j, position in enumerate(bases):
                disrupting.append((*snv(position, f"{site.kind}:{i}:{j}"), site.kind))
                offset = rng.choice([d for d in range(-50, 51) if site.position + d not in bases])
                controls.append((*snv(site.position + offset, f"control:{site.kind}:{i}:{j}"), site.kind))
        spread = [snv(p, f"random{k}") for k, p in enumerate(sorted(rng.sample(range(100, length - 100), random_snvs)))]
    header = f"##fileformat=VCFv4.2\n##contig=<ID={contig},length={length}>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"

    def write(name, rows):
        (out / name).write_text(header + "".join(f"{contig}\t{p + 1}\t{n}\t{r}\t{a}\t.\t.\t.\n" for p, n, r, a in rows))
        return out / name

    rows = sorted({(p, n, r, a) for p, n, r, a, _ in disrupting + controls})
    return (write("sites.vcf", rows), write("random.vcf", spread), write("one.vcf", spread[:1]),
            {n: kind for _, n, _, _, kind in disrupting + controls})


def score(model: Path, vcf: Path, genome: Path, out: Path, device: str) -> float:
    start = time.perf_counter()
    command = [sys.executable, "-m", "dnabert2", "variants", "--model", str(model), "--vcf", str(vcf), "--fasta",
               str(genome), "--out", str(out), "--device", device, "-q"]
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def rate(count: int, seconds: float, startup: float) -> str:
    """Variants/s past the start-up: the variants after the first over the time they added to it."""
    return f"{(count - 1) / (seconds - startup):.1f}" if seconds > startup else "–"


def losses(vcf: Path, kinds: dict[str, str]) -> dict[str, list[float]]:
    found = {"disrupting": [], "control": []}
    with pysam.VariantFile(str(vcf)) as records:
        names = records.header.info["DNABERT2"].description.split("Format: ")[1].split("|")
        for record in records:
            fields = dict(zip(names, record.info["DNABERT2"][0].split("|")))
            group = "control" if record.id.startswith("control") else "disrupting"
            found[group].append(float(fields[LOSS[kinds[record.id]]]))
    return found


def random_model(name: str, genome: Path, folder: Path, core: int = 2000, flank: int = 100) -> Path:
    """A per-base splice model of preset `name` with random weights, with the bundled workflow's cores
    and flanks, and a vocabulary learned on the genome."""
    import torch

    from dnabert2.model import build_model, preset

    torch.manual_seed(0)
    model = build_model(preset(name, num_labels=3), "dense")
    return dense_splice_folder(model, tokenizer_for(genome, None), folder, core, flank)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genome", required=True, type=Path)
    parser.add_argument("--annotation", required=True, type=Path)
    parser.add_argument("--contig", required=True)
    models = parser.add_mutually_exclusive_group(required=True)
    models.add_argument("--model", action="append", help="NAME=FOLDER of a per-base splice model")
    models.add_argument("--preset", help="time a per-base model of this preset with random weights instead")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--random-snvs", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sites_vcf, spread_vcf, one_vcf, kinds = build_vcfs(args.genome, args.annotation, args.contig, args.out,
                                                       args.random_snvs, args.seed)
    models = [item.split("=", 1) for item in args.model or []]
    if args.preset:
        models = [(args.preset, random_model(args.preset, args.genome, args.out / args.preset))]
    # The speed rows as soon as they are measured: a call cut short by its time limit keeps those before.
    print("| model | start-up s (1 SNV) | site SNVs | s | variants/s past start-up | random SNVs | s | "
          "variants/s past start-up |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    table = []
    for name, folder in models:
        spread_seconds = score(Path(folder), spread_vcf, args.genome, args.out / f"{name}.random.vcf.gz", args.device)
        # Random weights (a preset) score the sites to no purpose: their losses mean nothing.
        seconds = None if args.preset else score(Path(folder), sites_vcf, args.genome,
                                                 args.out / f"{name}.sites.vcf.gz", args.device)
        # Last, so that it finds the files and caches as warm as the runs it is taken from.
        startup = score(Path(folder), one_vcf, args.genome, args.out / f"{name}.one.vcf.gz", args.device)
        sites = "– | – | –" if seconds is None else f"{len(kinds)} | {seconds:.1f} | {rate(len(kinds), seconds, startup)}"
        print(f"| {name} | {startup:.1f} | {sites} | {args.random_snvs} | {spread_seconds:.1f} | "
              f"{rate(args.random_snvs, spread_seconds, startup)} |", flush=True)
        if args.preset:
            continue
        found = losses(args.out / f"{name}.sites.vcf.gz", kinds)
        labels = [1] * len(found["disrupting"]) + [0] * len(found["control"])
        auroc = roc_auc_score(labels, found["disrupting"] + found["control"])
        for group, values in found.items():
            q1, median, q3 = np.percentile(values, [25, 50, 75])
            table.append(f"| {name} | {group} | {len(values)} | {np.mean(values):.3f} | {median:.3f} | "
                         f"{q1:.3f}–{q3:.3f} | {np.mean(np.array(values) >= 0.5):.2f} | {auroc:.3f} |")
    if table:
        print()
        print("| model | SNVs | n | mean loss | median | IQR | share ≥ 0.5 | AUROC disrupting vs control |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        print("\n".join(table))


if __name__ == "__main__":
    main()

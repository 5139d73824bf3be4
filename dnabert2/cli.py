"""The `dnabert2` command line. Each command is a thin layer over the package: it parses options,
calls the library, and turns a UserError into one line on stderr and exit code 1."""

import argparse
import csv
import json
import logging
import signal
import sys
from pathlib import Path

from . import __version__
from .errors import UserError
from .outputs import atomic_output, check_outputs

log = logging.getLogger("dnabert2")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, not {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def cmd_download(args) -> None:
    from .download import download

    check_outputs([args.out], [args.source])
    report = download(args.source, args.out, sha256=args.sha256, md5=args.md5, retries=args.retries,
                      timeout=args.timeout, progress=not args.quiet)
    log.info("wrote %s: %s", args.out, json.dumps(report))


def cmd_vocab(args) -> None:
    from .tokenizer import learn_vocabulary

    check_outputs([args.out, args.report], args.genome)
    report = learn_vocabulary(args.genome, args.out, vocab_size=args.vocab_size, window=args.window,
                              sample_bp=args.sample_bp, heldout=args.heldout, seed=args.seed,
                              progress=not args.quiet)
    print(f"{args.out}: {report['vocab_size']} tokens, {report['heldout_bp_per_token']} bp/token on "
          f"{report['heldout_windows']} held-out windows, learned in {report['training_seconds']} s")
    if args.report:
        with atomic_output(args.report) as tmp:
            Path(tmp).write_text(json.dumps(report, indent=2) + "\n")


def cmd_windows(args) -> None:
    from .sequences import Fasta, genome_windows, read_bed_regions

    check_outputs([args.out], [args.genome, args.regions])
    fmt = args.format or ("csv" if args.out.suffix == ".csv" else "bed" if args.out.suffix == ".bed" else "fasta")
    regions = read_bed_regions(args.regions) if args.regions else None
    count = 0
    with Fasta(args.genome) as fasta, atomic_output(args.out) as tmp, open(tmp, "w", newline="") as out:
        table = csv.writer(out, lineterminator="\n")
        if fmt == "csv":
            table.writerow(["contig", "start", "end", "strand", "sequence"])
        for w in genome_windows(fasta, args.length, args.stride, regions=regions, contigs=args.contigs,
                                strands=args.strands, on_n=args.on_n, min_size=args.min_length):
            if fmt == "csv":
                table.writerow([w.contig, w.start, w.end, w.strand, w.sequence])
            elif fmt == "bed":
                out.write(f"{w.contig}\t{w.start}\t{w.end}\t{w.name}\t0\t{w.strand}\n")
            else:
                out.write(f">{w.name}\n{w.sequence}\n")
            count += 1
    log.info("wrote %d windows to %s", count, args.out)


def cmd_sites(args) -> None:
    from .bed import write_bed
    from .sequences import Fasta, read_annotation

    check_outputs([args.out], [args.annotation, args.genome])
    annotation = read_annotation(args.annotation)
    with Fasta(args.genome) as fasta:
        annotation.check_contigs(fasta.lengths, str(fasta.path))
        order = list(fasta.lengths)
    if args.kind == "introns":
        rows = [(i.contig, i.start, i.end, "intron", 0, i.strand) for i in annotation.introns()]
    elif args.kind == "genes":
        rows = [(g.contig, g.start, g.end, g.id, 0, g.strand) for g in annotation.genes()]
    else:
        sites = annotation.tss() if args.kind == "tss" else annotation.splice_sites()
        rows = [(s.contig, s.position, s.position + 1, s.kind, 0, s.strand) for s in sites]
    n = write_bed(args.out, rows, order)
    log.info("wrote %d %s to %s", n, args.kind, args.out)


def cmd_junctions(args) -> None:
    from .bed import write_junctions

    check_outputs([args.out], [args.bam, args.reference])
    n = write_junctions(args.out, args.bam, args.reference, min_mapq=args.min_mapq, min_reads=args.min_reads)
    log.info("wrote %d junctions to %s", n, args.out)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), not {text}")
    return value


def cmd_pretrain(args) -> None:
    from .pretrain import pretrain

    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"{args.out}: exists and is not a folder")
    row = pretrain(args.genome, args.tokenizer, args.out, model_preset=args.preset, init=args.init, steps=args.steps,
                   batch_size=args.batch_size, window_tokens=args.window_tokens, window_bp=args.window_bp,
                   max_tokens=args.max_tokens, weights=args.weight, max_n=args.max_n,
                   heldout_contigs=args.heldout_contigs or (), eval_every=args.eval_every,
                   eval_windows=args.eval_windows, lr=args.lr, betas=tuple(args.adam_betas), eps=args.adam_eps,
                   weight_decay=args.weight_decay, warmup=args.warmup, clip=args.clip, mask_rate=args.mask_rate,
                   dropout=args.dropout, seed=args.seed, checkpoint_every=args.checkpoint_every,
                   checkpoint_dir=args.checkpoint_dir, keep=args.keep, resume=args.resume, device=args.device,
                   dtype=args.dtype, workers=args.workers, compile=args.compile, tensorboard=args.tensorboard,
                   log_every=args.log_every, progress=not args.quiet and sys.stderr.isatty())
    if row:
        log.info("wrote %s after step %d: %s", args.out, row["step"], json.dumps(row))


def cmd_tasks(args) -> None:
    from .tasks import build_task

    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"{args.out}: exists and is not a folder")
    task = build_task(args.task, args.genome, args.annotation, args.out, test_contigs=args.test_contigs,
                      dev_contigs=args.dev_contigs, negatives=args.negatives, seed=args.seed, max_n=args.max_n)
    counts = ", ".join(f"{split} {sum(c.values())}" for split, c in task["counts"].items())
    print(f"{args.out}: {args.task}, {task['window_bp']} bp windows; {counts}; test contigs "
          f"{' '.join(task['contigs']['test'])}")


def cmd_finetune(args) -> None:
    from .finetune import finetune

    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"{args.out}: exists and is not a folder")
    metrics = finetune(args.model, args.data, args.out, lora=not args.full, r=args.lora_r, alpha=args.lora_alpha,
                       lora_dropout=args.lora_dropout, targets=args.target_modules, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, max_tokens=args.max_tokens, patience=args.patience,
                       seeds=args.seeds, merge=args.merge, device=args.device, dtype=args.dtype,
                       progress=not args.quiet and sys.stderr.isatty())
    test, sd = metrics["test"], metrics["test_sd"]
    print(f"{args.out}: test " + ", ".join(f"{k} {test[k]:.4f} ± {sd[k]:.4f}" for k in test)
          + f" over {len(args.seeds)} seed(s)")


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate, find_tasks

    check_outputs([args.out, args.out.with_suffix(".md")])
    tasks = find_tasks(args.gue) if args.gue else {args.data.name: args.data}
    options = {"lora": not args.full, "epochs": args.epochs, "seeds": args.seeds, "lr": args.lr,
               "batch_size": args.batch_size, "progress": False}
    rows = evaluate(args.model, tasks, args.out, baselines=[b for b in args.baseline if b != "none"],
                    kmer=args.kmer, finetune_options=options, device=args.device)
    print(args.out.with_suffix(".md").read_text(), end="")
    log.info("wrote %d rows to %s", len(rows), args.out)


def _scan_line(report: dict, out) -> str:
    calls = ", ".join(f"{n} {label}" for label, n in sorted(report["calls"].items())) or "no calls"
    return (f"{out}: {calls} from {report['windows']} windows ({report['bases']} bp) in {report['seconds']:.1f} s, "
            f"{report['bp_per_second']} bp/s")


def cmd_scan(args) -> None:
    from .scan import scan
    from .scan.plan import parse_chunk

    chunk = parse_chunk(args.chunk) if args.chunk else (0, 1)
    if args.bam is None and args.fasta is None:
        raise UserError("give --fasta, or --bam (with --reference for --covered)")
    if args.covered is not None and args.bam is None:
        raise UserError("--covered needs --bam")
    reference = args.reference or args.fasta if args.bam is not None else None
    report = scan(args.model, args.out, fasta=None if args.bam is not None else args.fasta, bam=args.bam,
                  reference=reference, covered=args.covered, regions=args.regions, contigs=args.contigs,
                  window=args.window, stride=args.stride, strands=args.strands, labels=args.labels,
                  threshold=args.threshold, top_k=args.top_k, bedgraph=args.bedgraph, summary=args.summary,
                  chunk_of=chunk, batch_tokens=args.batch_tokens, workers=args.workers, max_n=args.max_n,
                  min_mapq=args.min_mapq, min_reads=args.min_reads, junctions=args.junctions, device=args.device,
                  dtype=args.dtype, progress=not args.quiet and sys.stderr.isatty())
    print(_scan_line(report, args.out))


def cmd_scan_gather(args) -> None:
    from .scan import gather

    report = gather(args.summaries, args.out, bedgraph=args.bedgraph, summary=args.summary, top_k=args.top_k)
    print(_scan_line(report, args.out))


def cmd_scan_eval(args) -> None:
    from .scan.evaluation import evaluate_calls

    check_outputs([args.out], [args.calls, args.annotation, args.summary])
    report = evaluate_calls(args.calls, args.annotation, splice_tolerance=args.splice_tolerance,
                            tss_tolerance=args.tss_tolerance, regions=args.regions, contigs=args.contigs,
                            summary=args.summary)
    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        with atomic_output(args.out) as tmp:
            Path(tmp).write_text(text)
    print(text, end="")


def cmd_plot(args) -> None:
    from . import plots

    check_outputs([args.out], [args.input])
    if not args.input.is_file():
        raise UserError(f"{args.input}: no such file")
    (plots.pretraining_loss if args.kind == "pretraining" else plots.score_distribution)(args.input, args.out)
    log.info("wrote %s", args.out)


def _training_options(p) -> None:
    """Fine-tuning options shared by finetune and evaluate."""
    p.add_argument("--epochs", type=_positive, default=5, help="at most this many epochs per task (default 5)")
    p.add_argument("--batch-size", type=_positive, default=32, help="sequences per step (default 32)")
    p.add_argument("--lr", type=_positive_float, help="learning rate (default 1e-4 with LoRA, 3e-5 full)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="N", help="seeds to train with (default 0)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnabert2",
        description="DNABERT-2 for genome annotation: genomes in, BPE vocabulary, sequence utilities.",
    )
    parser.add_argument("--version", action="version", version=f"dnabert2 {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only, no progress bars")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name, **kwargs):
        return commands.add_parser(name, parents=[common], **kwargs)


    p = add("download", help="fetch a genome into a bgzip FASTA with .fai and .gzi indices",
                            description="Fetch a genome, verify its checksum and write it bgzip-compressed with "
                            ".fai and .gzi indices. Interrupted transfers resume; nothing partial is left at --out.")
    p.add_argument("source", metavar="SOURCE",
                   help="ensembl:SPECIES[:RELEASE[:ASSEMBLY]] | ucsc:ASSEMBLY | ncbi:ACCESSION | "
                   "http(s)/ftp/file URL | local FASTA or GenBank path (plain, gzip or bgzip)")
    p.add_argument("--out", required=True, type=Path, help="output FASTA, bgzip-compressed (e.g. genome.fa.gz)")
    digest = p.add_mutually_exclusive_group()
    digest.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the file as fetched (overrides the source's checksum)")
    digest.add_argument("--md5", metavar="HEX", help="expected MD5 of the file as fetched (overrides the source's checksum)")
    p.add_argument("--retries", type=_non_negative, default=5, help="further attempts after a failed transfer, with exponential back-off (default 5)")
    p.add_argument("--timeout", type=_positive_float, default=60.0, help="seconds without data before a retry (default 60)")
    p.set_defaults(run=cmd_download)

    p = add("vocab", help="learn a BPE vocabulary (tokenizer.json) from genomes",
                            description="Learn a BPE vocabulary with Hugging Face tokenizers from windows sampled "
                            "uniformly over one or more genomes (both strands), and report base pairs per token "
                            "on held-out windows. The same inputs and seed give the same vocabulary.")
    p.add_argument("--genome", action="append", required=True, type=Path, metavar="FASTA",
                   help="genome FASTA or GenBank (repeat for several genomes); plain or bgzip FASTA is read "
                   "by region, gzip and GenBank whole into memory")
    p.add_argument("--out", required=True, type=Path, help="output tokenizer.json")
    p.add_argument("--vocab-size", type=int, default=4096, help="tokens in the vocabulary, special tokens included (default 4096)")
    p.add_argument("--window", type=int, default=1000, help="length of the sampled windows in bp (default 1000)")
    p.add_argument("--sample-bp", type=_positive, default=50_000_000,
                   help="base pairs to learn from, at most the whole genome(s) (default 50,000,000)")
    p.add_argument("--heldout", type=float, default=0.05, help="fraction of windows held out to measure bp/token (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling (default 0)")
    p.add_argument("--report", type=Path, help="also write the report (vocabulary size, bp/token, timing) as JSON")
    p.set_defaults(run=cmd_vocab)

    p = add("windows", help="write fixed-length windows of a genome as FASTA, CSV or BED",
                            description="Tile contigs or regions with windows of a fixed length and stride, on "
                            "both strands (minus-strand windows reverse-complemented), upper-cased.")
    p.add_argument("--genome", required=True, type=Path, metavar="FASTA", help="genome FASTA or GenBank")
    p.add_argument("--out", required=True, type=Path, help="output file (.fa/.fasta, .csv or .bed)")
    p.add_argument("--length", type=_positive, default=400, help="window length in bp (default 400)")
    p.add_argument("--stride", type=_positive, default=200, help="distance between window starts in bp (default 200)")
    p.add_argument("--strands", choices=["both", "+", "-"], default="both", help="strands to emit (default both)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--contigs", nargs="+", metavar="CONTIG", help="only these contigs")
    where.add_argument("--regions", type=Path, metavar="BED", help="only these regions")
    p.add_argument("--on-n", choices=["split", "skip", "keep"], default="split",
                   help="runs of N: split stretches at them (default), skip windows holding N, or keep them")
    p.add_argument("--min-length", type=_positive, help="emit stretches shorter than a window if at least this long")
    p.add_argument("--format", choices=["fasta", "csv", "bed"], help="output format (default: from the --out suffix, else FASTA)")
    p.set_defaults(run=cmd_windows)

    p = add("sites", help="write annotated TSSs, splice sites, introns or genes as BED",
                            description="Read a GFF3 or GTF and write, strand-aware, one BED6 line per TSS "
                            "(first transcribed base), splice site (donor: the intron's first base; acceptor: "
                            "its last), intron or gene span.")
    p.add_argument("--annotation", required=True, type=Path, metavar="GTF|GFF3", help="gene annotation (plain or gzip)")
    p.add_argument("--genome", required=True, type=Path, metavar="FASTA", help="the genome it annotates (contigs are checked)")
    p.add_argument("--kind", choices=["tss", "splice", "introns", "genes"], default="splice", help="what to write (default splice)")
    p.add_argument("--out", required=True, type=Path, help="output BED")
    p.set_defaults(run=cmd_sites)

    p = add("junctions", help="write splice junctions seen in a BAM/CRAM (CIGAR N) as BED",
                            description="Count introns (CIGAR N) in primary alignments and write them as BED6 "
                            "named reads=N (score: N, capped at 1000); strand from XS/ts tags or the reference's motif.")
    p.add_argument("--bam", required=True, type=Path, help="indexed BAM or CRAM")
    p.add_argument("--reference", type=Path, metavar="FASTA", help="reference FASTA (needed for CRAM; gives strands by motif)")
    p.add_argument("--min-reads", type=_positive, default=1, help="minimum supporting reads (default 1)")
    p.add_argument("--min-mapq", type=int, default=0, help="minimum mapping quality (default 0)")
    p.add_argument("--out", required=True, type=Path, help="output BED")
    p.set_defaults(run=cmd_junctions)

    p = add("pretrain", help="pretrain a DNABERT-2 masked LM on genomes (one process, or many under torchrun)",
            description="Masked-LM pretraining on windows drawn at random from genomes (both strands, N-rich "
            "windows skipped), tokenised in DataLoader workers and packed without padding. Checkpoints resume "
            "exactly; the final model is written to --out in the Hugging Face layout with metrics.jsonl. "
            "Under torchrun (e.g. `torchrun --nproc-per-node 8 -m dnabert2 pretrain ...`, or `srun torchrun "
            "...` on SLURM) the same command runs data-parallel over every GPU.")
    p.add_argument("--genome", action="append", required=True, type=Path, metavar="FASTA",
                   help="genome FASTA (repeat for several; bgzip with .fai for random access)")
    p.add_argument("--weight", action="append", type=_positive_float, metavar="W",
                   help="sampling weight of each --genome, in the same order (default: equal weights)")
    p.add_argument("--tokenizer", required=True, type=Path, help="tokenizer.json (from `dnabert2 vocab`) or a model folder")
    p.add_argument("--out", required=True, type=Path, help="output model folder")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--preset", default="tiny", choices=["tiny", "small", "base"],
                       help="model size from scratch (default tiny; base = DNABERT-2-117M)")
    start.add_argument("--init", type=Path, metavar="DIR", help="continue pretraining this model folder instead")
    p.add_argument("--steps", type=_positive, default=1000, help="optimiser steps (default 1000)")
    p.add_argument("--batch-size", type=_positive, default=256, help="windows per step, over all processes (default 256)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--window-tokens", type=_positive, default=128,
                        help="window length in tokens, [CLS] and [SEP] included (default 128, as DNABERT-2)")
    length.add_argument("--window-bp", type=_positive, help="window length in bp instead")
    p.add_argument("--max-tokens", type=_positive, default=32768,
                   help="tokens per forward pass and process, and the longest window; larger batches accumulate "
                   "gradients (default 32768)")
    p.add_argument("--max-n", type=_fraction, default=0.05, help="skip windows with more than this fraction of N (default 0.05)")
    p.add_argument("--heldout-contigs", nargs="+", metavar="CONTIG", help="contigs kept out of training for the evaluation loss")
    p.add_argument("--eval-every", type=_positive, help="steps between evaluations (default: at the end only)")
    p.add_argument("--eval-windows", type=_positive, default=256, help="held-out windows evaluated (default 256)")
    p.add_argument("--lr", type=_positive_float, default=5e-4, help="peak learning rate (default 5e-4)")
    p.add_argument("--warmup", type=_fraction, default=0.06, help="fraction of steps of linear warm-up (default 0.06)")
    p.add_argument("--weight-decay", type=float, default=1e-5, help="AdamW weight decay (default 1e-5)")
    p.add_argument("--adam-betas", type=float, nargs=2, default=[0.9, 0.98], metavar=("B1", "B2"), help="default 0.9 0.98")
    p.add_argument("--adam-eps", type=_positive_float, default=1e-6, help="default 1e-6")
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping, 0 for none (default 1.0)")
    p.add_argument("--mask-rate", type=_fraction, default=0.15, help="fraction of tokens masked (default 0.15)")
    p.add_argument("--dropout", type=_fraction, help="hidden dropout (default: the model's, 0.1)")
    p.add_argument("--checkpoint-every", type=_positive, help="steps between checkpoints (default: at the end only)")
    p.add_argument("--checkpoint-dir", type=Path, help="where checkpoints and the live metrics.jsonl go (default OUT/checkpoints)")
    p.add_argument("--keep", type=_positive, default=2, help="checkpoints kept (default 2)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint, if there is one")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=["bf16", "fp32"], help="bf16 autocast (default on a GPU) or fp32 (default on a CPU)")
    p.add_argument("--workers", type=_non_negative, default=2, help="DataLoader worker processes (default 2)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard, under the checkpoint folder")
    p.add_argument("--log-every", type=_positive, default=10, help="steps between throughput figures (default 10)")
    p.set_defaults(run=cmd_pretrain)

    p = add("tasks", help="build a GUE-style classification task (promoters or splice sites) from a genome and its annotation",
            description="Build train/dev/test CSVs in the GUE format (sequence,label) from a genome and its "
            "GTF/GFF3: promoter (300 bp, -249..+50 around TSSs), core-promoter (70 bp, -34..+35) or splice "
            "(400 bp centred on exon-intron boundaries; 0 neither, 1 donor, 2 acceptor). Split by contig, "
            "deduplicated, balanced; task.json describes the result.")
    p.add_argument("task", choices=["promoter", "core-promoter", "splice"])
    p.add_argument("--genome", required=True, type=Path, metavar="FASTA", help="genome FASTA")
    p.add_argument("--annotation", required=True, type=Path, metavar="GTF|GFF3", help="its gene annotation")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--test-contigs", nargs="+", metavar="CONTIG", help="contigs for the test split (default: chosen, ~10%% of sites)")
    p.add_argument("--dev-contigs", nargs="+", metavar="CONTIG", help="contigs for the dev split (default: chosen, ~10%% of sites)")
    p.add_argument("--negatives", choices=["genomic", "shuffled"], default="genomic",
                   help="promoter negatives: genomic windows away from any TSS (default), or GUE-style shuffled positives")
    p.add_argument("--max-n", type=_fraction, default=0.0, help="largest fraction of N in a window (default 0)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(run=cmd_tasks)

    p = add("finetune", help="fine-tune a model for sequence classification on a GUE-format task (LoRA or full)",
            description="Fine-tune a model folder (this project's or the released DNABERT-2) on a task folder "
            "holding train.csv, dev.csv and test.csv (sequence,label). Evaluates on dev every epoch, stops early, "
            "keeps the epoch with the best dev MCC, and writes test MCC, macro F1, accuracy, AUROC and AUPRC "
            "(mean and sd over seeds) to OUT/metrics.json. With LoRA, OUT holds the adapter and the head only; "
            "`dnabert2.load_model(OUT)` merges them into the base model.")
    p.add_argument("--model", required=True, type=Path, help="model folder to start from")
    p.add_argument("--data", required=True, type=Path, help="task folder (GUE format)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    method = p.add_mutually_exclusive_group()
    method.add_argument("--lora", action="store_true", help="LoRA through peft (the default)")
    method.add_argument("--full", action="store_true", help="fine-tune every weight")
    p.add_argument("--lora-r", type=_positive, default=8, help="LoRA rank (default 8)")
    p.add_argument("--lora-alpha", type=_positive, default=16, help="LoRA alpha (default 16)")
    p.add_argument("--lora-dropout", type=_fraction, default=0.05, help="LoRA dropout (default 0.05)")
    p.add_argument("--target-modules", nargs="+", default=["Wqkv", "dense", "gated_layers", "wo"],
                   metavar="MODULE", help="encoder modules LoRA adapts (default: Wqkv dense gated_layers wo)")
    _training_options(p)
    p.add_argument("--patience", type=_positive, default=3, help="epochs without a better dev MCC before stopping (default 3)")
    p.add_argument("--max-tokens", type=_positive, help="longest input in tokens (default: a quarter of the longest sequence in bp)")
    p.add_argument("--merge", action="store_true", help="save a whole merged model instead of the LoRA adapter")
    p.add_argument("--dtype", choices=["bf16", "fp32"], help="bf16 autocast (default on a GPU) or fp32")
    p.set_defaults(run=cmd_finetune)

    p = add("evaluate", help="score a model on GUE-format tasks, with baselines beside it",
            description="For every task folder under --gue (GUE layout: EMP/, prom/, splice/, tf/, virus/ ...; "
            "any folder holding train.csv, dev.csv and test.csv) or the one --data task: fine-tune the model "
            "(LoRA unless --full; a model that is already a fine-tuned classifier is scored as it is) and score "
            "it on test, beside a k-mer logistic-regression baseline (and, with --baseline cnn, a small CNN). "
            "Writes a TSV (one row per task and "
            "method: MCC, F1, accuracy, AUROC, AUPRC) and a Markdown table of MCC beside it (OUT with .md).")
    p.add_argument("--model", required=True, type=Path, help="model folder (pretrained, or a fine-tuned classifier)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--gue", type=Path, metavar="DIR", help="a folder of task folders (the GUE layout)")
    where.add_argument("--data", type=Path, metavar="DIR", help="one task folder")
    p.add_argument("--out", required=True, type=Path, help="results table (TSV); the Markdown table goes beside it")
    p.add_argument("--baseline", nargs="+", choices=["kmer", "cnn", "none"], default=["kmer"],
                   help="baselines beside the model: kmer (k-mer logistic regression), cnn (a small CNN on "
                   "one-hot sequence), or none (default kmer)")
    p.add_argument("--kmer", type=_positive, default=6, help="k of the k-mer baseline (default 6)")
    p.add_argument("--full", action="store_true", help="fine-tune every weight instead of LoRA")
    _training_options(p)
    p.set_defaults(run=cmd_evaluate)

    p = add("scan", help="scan a genome (FASTA) or aligned reads (BAM) with a fine-tuned classifier into BED calls",
            description="Slide windows of the task's length over every contig (or --regions/--contigs), on both "
            "strands, and classify them with a fine-tuned model. Windows scoring at or above --threshold for a "
            "label (every label but 0 unless --labels) become calls; overlapping ones merge into one call whose "
            "peak is the best window's site. Output: BED6+4 in the narrowPeak layout (contig, start, end, label, "
            "probability x 1000, strand, supporting windows or reads, -1, -1, peak offset), sorted. With --bam: "
            "scan the read sequences and place hits on the reference through the alignments, one call per site "
            "with its read support; or with --covered N scan the reference (--reference) where N or more reads "
            "cover it. --chunk i/n scans the i-th of n balanced parts; `dnabert2 scan-gather` joins them.")
    p.add_argument("--model", required=True, type=Path, help="fine-tuned classifier folder (`dnabert2 finetune`)")
    p.add_argument("--fasta", type=Path, help="genome FASTA (plain, gzip or bgzip; bgzip with .fai is read by region)")
    p.add_argument("--bam", type=Path, help="indexed BAM/CRAM: scan its reads (or with --covered, what they cover)")
    p.add_argument("--reference", type=Path, help="the BAM's reference FASTA (needed for --covered and CRAM)")
    p.add_argument("--covered", type=_positive, metavar="DEPTH", help="scan the reference where at least DEPTH reads align")
    p.add_argument("--out", required=True, type=Path, help="calls (BED6+4)")
    p.add_argument("--bedgraph", type=Path, help="also write every window's probability (one track per label and strand)")
    p.add_argument("--summary", type=Path, help="also write a JSON summary (windows, calls, bp/s); scan-gather needs it")
    p.add_argument("--junctions", type=Path, help="with --bam: also write the junctions the reads show (CIGAR N) as BED6")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--regions", type=Path, metavar="BED", help="scan only these regions")
    where.add_argument("--contigs", nargs="+", metavar="CONTIG", help="scan only these contigs")
    p.add_argument("--window", type=_positive, help="window length in bp (default: the task's)")
    p.add_argument("--stride", type=_positive, help="bp between window starts; a call's peak is exact to the stride "
                   "(default: a quarter of the window)")
    p.add_argument("--strands", choices=["both", "+", "-"], default="both", help="strands to scan (default both)")
    p.add_argument("--labels", nargs="+", metavar="LABEL", help="labels to call, by name or index (default: all but 0)")
    p.add_argument("--threshold", type=float, default=0.5, help="smallest probability called (default 0.5)")
    p.add_argument("--top-k", type=_positive, metavar="K", help="keep only the K best calls of each label")
    p.add_argument("--chunk", metavar="I/N", help="scan only the I-th (0-based) of N balanced parts of the genome")
    p.add_argument("--max-n", type=_fraction, default=0.1, help="skip windows with more than this fraction of N (default 0.1)")
    p.add_argument("--min-mapq", type=_non_negative, default=0, help="with --bam: ignore alignments below this MAPQ (default 0)")
    p.add_argument("--min-reads", type=_positive, default=1, help="reads mode: sites with fewer supporting reads are dropped (default 1)")
    p.add_argument("--batch-tokens", type=_positive, help="tokens per forward pass (default 65536 on a GPU, 8192 on the CPU)")
    p.add_argument("--workers", type=_non_negative, default=1, help="DataLoader workers reading and tokenising (default 1)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto", help="bf16 on a GPU (auto), fp32 on the CPU")
    p.set_defaults(run=cmd_scan)

    p = add("scan-gather", help="join the chunks of a scan (their --summary files) into one BED",
            description="Join `dnabert2 scan --chunk i/n` outputs, given by their summaries (in any order), into one "
            "sorted BED; calls that meet across chunk ends merge, so the result is what one unchunked scan gives. "
            "--top-k is applied here, over the whole genome.")
    p.add_argument("summaries", nargs="+", type=Path, metavar="SUMMARY", help="chunk summaries (JSON)")
    p.add_argument("--out", required=True, type=Path, help="calls (BED6+4)")
    p.add_argument("--bedgraph", type=Path, help="joined per-window scores (every chunk needs its own)")
    p.add_argument("--summary", type=Path, help="joined summary (JSON)")
    p.add_argument("--top-k", type=_positive, metavar="K", help="keep only the K best calls of each label")
    p.set_defaults(run=cmd_scan_gather)

    p = add("scan-eval", help="precision, recall and F1 of scan calls against a GTF/GFF3",
            description="Match each call's peak to the annotated sites of its label (promoter: TSS; donor, "
            "acceptor: splice sites) on the same strand: splice sites exactly or within --splice-tolerance bp, "
            "TSSs within --tss-tolerance bp. Calls and sites outside --regions/--contigs (or the scan's regions, "
            "given --summary) are left out. Prints (and with --out writes) JSON: per label and overall, calls, "
            "sites, precision, recall and F1.")
    p.add_argument("--calls", required=True, type=Path, help="calls from `dnabert2 scan`")
    p.add_argument("--annotation", required=True, type=Path, metavar="GTF|GFF3", help="gene annotation")
    p.add_argument("--out", type=Path, help="JSON report")
    p.add_argument("--summary", type=Path, help="the scan's summary (`scan --summary`): the labels it called and "
                   "the regions it scanned, so labels without calls count and sites outside the scan do not")
    p.add_argument("--splice-tolerance", type=_non_negative, default=0, help="bp a splice site may be off (default 0: exact)")
    p.add_argument("--tss-tolerance", type=_non_negative, default=100, help="bp a TSS may be off (default 100)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--regions", type=Path, metavar="BED", help="count only annotated sites inside these regions (where the scan looked)")
    where.add_argument("--contigs", nargs="+", metavar="CONTIG", help="count only annotated sites on these contigs")
    p.set_defaults(run=cmd_scan_eval)

    p = add("plot", help="draw a figure for a report: pretraining loss, or scan score distributions",
            description="pretraining: the loss per step and the held-out loss from a pretraining metrics.jsonl. "
            "scores: histograms of a scan's probabilities per label and strand (a bedGraph from `scan --bedgraph`) "
            "or of its calls' scores per label (its BED). Writes SVG.")
    p.add_argument("kind", choices=["pretraining", "scores"])
    p.add_argument("input", type=Path, help="metrics.jsonl, or a scan bedGraph or calls BED")
    p.add_argument("--out", required=True, type=Path, help="figure (SVG)")
    p.set_defaults(run=cmd_plot)
    return parser


def _terminated(signum, frame):
    # SIGTERM (a cluster or Snakemake stopping the job) unwinds like Ctrl-C, so temporary files go.
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args.run(args)
    except UserError as error:
        message = " ".join(str(error).split())
        print(f"dnabert2 {args.command}: error: {message}", file=sys.stderr)
        return 1
    except OSError as error:  # a disk or permission problem the user can act on
        where = f": {error.filename}" if error.filename else ""
        print(f"dnabert2 {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dnabert2 {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0

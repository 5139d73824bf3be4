"""What each command can be told: its settings, their defaults and help, declared once.

Each command builds its options from its dataclass here (`add_settings` beside the command), the
library functions take the dataclass (or its fields as keywords), and the workflow turns its config
into the same options (dnabert2/workflow_config.py); tests check the workflow schema's defaults
against these. This module imports nothing heavy, so the workflow can read it without torch.
"""

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from .options import (fraction, input_tokens, learning_rate, mapq, model_argument, non_negative, positive, positive_float,
                      setting, share)
from .tasks.registry import KINDS, TOLERANCES

PRECISIONS = ("auto", "bf16", "fp32")
PRESET_NAMES = ("tiny", "small", "base")  # dnabert2.model.config.PRESETS defines them
LORA_TARGETS = ("Wqkv", "dense", "gated_layers", "wo")  # dnabert2.model.adapters places them
# The shortest known spliceosomal introns are about 20 bp (ciliates); shorter gaps between exons are
# frameshifts or indels in the genome.
MIN_INTRON = 20
LORA_FROM = 50_000_000  # parameters from which fine-tuning defaults to LoRA


def _device():
    return setting("auto", "auto, cpu, cuda or cuda:N")


def _precision(help_text: str, default: str = "auto"):
    return setting(default, help_text, choices=PRECISIONS)


def _batch_tokens():
    # dnabert2.devices.batch_tokens resolves the default
    return setting(None, "tokens per forward pass", type=positive, default_text="65536 on a GPU, 8192 on the CPU")


def _workers(help_text: str):
    # None: devices.data_workers gives one per core of this process, the main process's aside.
    return setting(None, help_text, type=non_negative,
                   default_text="the cores available, less one for the main process (per process under torchrun)")


def _min_intron(default_text=None, default=MIN_INTRON):
    return setting(default, "gaps between exons shorter than this many bp are no introns (frameshifts, indels)",
                   type=positive, default_text=default_text)


def _biotypes(default_text="every transcript"):
    return setting(None, "only transcripts of these biotypes: a transcript's GFF3 type (mRNA, lnc_RNA), and its own "
                   "biotype attribute (protein_coding, retained_intron), else its gene's", nargs="+",
                   flag="--biotype", metavar="BIOTYPE", default_text=default_text)


def _tags(default_text="every transcript"):
    return setting(None, "only transcripts with one of these tags, as GENCODE, Ensembl and RefSeq tag them "
                   "(MANE_Select, Ensembl_canonical, basic; RefSeq's 'MANE Select')", nargs="+", flag="--tag",
                   metavar="TAG", default_text=default_text)


def _compile():
    return setting(False, "torch.compile the model (pays a compilation at the start; worth it on long runs)")


def _force():
    return setting(False, "replace an output folder that already holds files, with exactly this run's output")


@dataclass
class DownloadSettings:
    sha256: str | None = setting(None, "expected SHA-256 of the file as fetched (overrides the source's checksum)",
                                 metavar="HEX", group="digest")
    md5: str | None = setting(None, "expected MD5 of the file as fetched (overrides the source's checksum)",
                              metavar="HEX", group="digest")
    retries: int = setting(5, "further attempts after a failed transfer, with exponential back-off", type=non_negative)
    timeout: float = setting(60.0, "seconds without data before a retry", type=positive_float)


@dataclass
class VocabSettings:
    vocab_size: int = setting(4096, "tokens in the vocabulary, special tokens included", type=int)
    window: int = setting(1000, "length of the sampled windows in bp", type=int)
    sample_bp: int = setting(50_000_000, "base pairs to learn from, at most the whole windows the genome(s) hold", type=positive)
    heldout: float = setting(0.05, "fraction of windows held out to measure bp/token", type=float)
    seed: int = setting(0, "random seed for sampling", type=non_negative)
    heldout_contigs: list[str] = setting([], "contigs no window is drawn from (those pretraining holds out, so that "
                                         "they stay unseen)", nargs="+", metavar="CONTIG")


@dataclass
class WindowsSettings:
    # Named as scanning names it; --length is its old spelling.
    window: int = setting(400, "window length in bp", type=positive, aliases=("--length",))
    stride: int = setting(200, "distance between window starts in bp", type=positive)
    strands: str = setting("both", "strands to emit", choices=["both", "+", "-"])
    contigs: list[str] | None = setting(None, "only these contigs", nargs="+", metavar="CONTIG", group="where")
    regions: Path | None = setting(None, "only these regions (overlapping or touching ones tiled as one; on the "
                                   "strands of --strands: a BED's strand column is not read)", type=Path,
                                   metavar="BED", group="where")
    on_n: str = setting("split", "runs of N (or another IUPAC code than A, C, G, T): split stretches at them, skip "
                        "windows holding N, or keep them",
                        choices=["split", "skip", "keep"])
    min_length: int | None = setting(None, "emit stretches shorter than a window if at least this long", type=positive)
    format: str | None = setting(None, "output format", choices=["fasta", "csv", "bed"],
                                 default_text="from the --out suffix, else FASTA")


@dataclass
class SitesSettings:
    kind: str = setting("splice", "what to write", choices=["tss", "tts", "splice", "introns", "genes"])
    min_intron: int | None = _min_intron(f"{MIN_INTRON}; splice and introns only", default=None)
    biotypes: list[str] | None = _biotypes()
    tags: list[str] | None = _tags()


@dataclass
class JunctionsSettings:
    min_reads: int = setting(1, "minimum supporting reads of a junction, both strands' together (a pair whose "
                             "mates both cross it counts once, as in STAR's SJ.out.tab)", type=positive)
    min_mapq: int = setting(0, "minimum mapping quality", type=mapq)
    regions: Path | None = setting(None, "only the junctions overlapping these regions, as `scan --junctions` keeps "
                                   "those of the regions it scans", type=Path, metavar="BED", group="where")
    contigs: list[str] | None = setting(None, "only these contigs' junctions", nargs="+", metavar="CONTIG",
                                        default_text="every contig", group="where")


@dataclass
class PretrainSettings:
    preset: str = setting("tiny", "model size from scratch (base = DNABERT-2-117M)", choices=PRESET_NAMES,
                          group="start")
    init: str | None = setting(None, "continue pretraining this model folder instead", type=model_argument, metavar="DIR",
                                group="start")
    weights: list[float] | None = setting(None, "sampling weight of each --genome, in the same order: the share of "
                                          "windows drawn from it, whatever its size", type=positive_float,
                                          append=True, flag="--weight", metavar="W",
                                          default_text="equal weights, so each genome gives as many windows")
    steps: int = setting(1000, "optimiser steps", type=positive)
    batch_size: int = setting(256, "windows per step, over all processes", type=positive)
    window_tokens: int = setting(128, "window length in tokens, [CLS] and [SEP] included (as DNABERT-2)",
                                 type=positive, group="length")
    window_bp: int | None = setting(None, "window length in bp instead", type=positive, group="length")
    # The micro-batch budget, named as scanning names it; --max-tokens is its old spelling.
    batch_tokens: int = setting(32768, "tokens per forward pass and process, at least a window's (a window in bp is "
                                "cut to it); larger batches accumulate gradients", type=positive,
                                aliases=("--max-tokens",))
    max_n: float = setting(0.05, "skip windows with more than this fraction of N among the bases drawn for them "
                           "(6 a token, for --window-tokens), or among those their tokens keep", type=fraction)
    heldout_contigs: list[str] = setting([], "contigs kept out of training for the evaluation loss (a name is held "
                                         "out of every genome that has it)", nargs="+", metavar="CONTIG")
    eval_every: int | None = setting(None, "steps between evaluations", type=positive, default_text="at the end only")
    eval_windows: int = setting(256, "held-out windows evaluated", type=positive)
    lr: float = setting(5e-4, "peak learning rate", type=learning_rate)
    warmup: float = setting(0.06, "fraction of steps of linear warm-up", type=fraction)
    weight_decay: float = setting(1e-5, "AdamW weight decay", type=float)
    adam_betas: list[float] = setting([0.9, 0.98], "AdamW betas", type=float, nargs=2, metavar=("B1", "B2"))
    adam_eps: float = setting(1e-6, "AdamW epsilon", type=positive_float)
    clip: float = setting(1.0, "gradient-norm clipping, 0 for none", type=float)
    mask_rate: float = setting(0.15, "fraction of tokens masked", type=fraction)
    dropout: float | None = setting(None, "hidden dropout", type=fraction, default_text="the model's, 0.1")
    checkpoint_every: int | None = setting(None, "steps between checkpoints", type=positive,
                                           default_text="at the end only")
    checkpoint_dir: Path | None = setting(None, "where checkpoints and the live metrics.jsonl go (on several nodes: a "
                                          "folder they all read, where rank 0 writes and every rank resumes from)", type=Path,
                                          default_text="OUT/checkpoints")
    keep: int = setting(2, "checkpoints kept", type=positive)
    resume: bool = setting(False, "continue from the latest checkpoint, if there is one (with --force: if it is one "
                           "of these settings, else start afresh)")
    seed: int = setting(0, "random seed", type=non_negative)
    device: str = _device()
    dtype: str = _precision("bf16 autocast (auto on a GPU) or fp32 (auto on a CPU)")
    workers: int | None = _workers("DataLoader worker processes")
    compile: bool = _compile()
    tensorboard: bool = setting(False, "also log to TensorBoard, under the checkpoint folder")
    log_every: int = setting(10, "steps between throughput figures", type=positive)
    force: bool = setting(False, "replace an output folder that already holds files, and start afresh over the "
                          "checkpoints of an earlier run (removing them)")


def window_over_batch(window_tokens: int, window_bp: int | None, batch_tokens: int) -> str | None:
    """Why a pretraining window cannot be trained on whole, if it cannot: it must fit in one forward pass."""
    if window_bp is None and batch_tokens < window_tokens:
        return (f"batch tokens {batch_tokens} cannot hold a window of {window_tokens} tokens: make batch tokens at "
                "least the window's")
    return None


@dataclass
class TaskSettings:
    test_contigs: list[str] | None = setting(None, "contigs for the test split", nargs="+", metavar="CONTIG",
                                             default_text="chosen, 10-30% of sites")
    dev_contigs: list[str] | None = setting(None, "contigs for the dev split", nargs="+", metavar="CONTIG",
                                            default_text="chosen, 10-30% of sites")
    negatives: str = setting("genomic", "negatives of kinds without a motif: genomic windows away from any site, or "
                             "GUE-style shuffled positives",
                             choices=sorted({n for kind in KINDS.values() for n in kind.negatives}))
    max_n: float = setting(0.0, "largest fraction of N in a window", type=fraction)
    seed: int = setting(0, "random seed", type=non_negative)
    min_intron: int = _min_intron()
    biotypes: list[str] | None = _biotypes()
    tags: list[str] | None = _tags()
    dense: bool = setting(False, "build a base-resolution task: long windows labelled at every base (for a per-base "
                          "head) instead of one label per window")
    core: int = setting(3000, "dense: bases each window is labelled and scored on", type=positive)
    flank: int = setting(150, "dense: bases of context on each side of the core, not scored (a scan reads them "
                         "again for each window)", type=non_negative)
    empty_rate: float = setting(0.1, "dense: share of training windows without an annotated site that are kept "
                                "(dev and test keep all)", type=share)
    force: bool = _force()
    margin: int = 1000  # bp between a genomic negative and the nearest site


@dataclass
class FinetuneSettings:
    # "auto": LoRA for a model of LORA_FROM parameters or more (the released 117 M), every weight for a
    # smaller one, where LoRA's adapters have too little to adapt and the classifier stays at one class.
    method: str = setting("auto", "what is trained", switches={
        "--lora": ("lora", "LoRA through peft: adapters in the encoder, the head trained whole"),
        "--full": ("full", "fine-tune every weight")},
        default_text="LoRA for a model of 50 M parameters or more, every weight for a smaller one")
    lora_r: int = setting(8, "LoRA rank", type=positive)
    lora_alpha: int = setting(16, "LoRA alpha", type=positive)
    lora_dropout: float = setting(0.05, "LoRA dropout", type=fraction)
    target_modules: list[str] = setting(list(LORA_TARGETS), "encoder modules LoRA adapts", nargs="+",
                                        metavar="MODULE")
    epochs: int = setting(5, "at most this many epochs per task", type=positive)
    batch_size: int = setting(32, "sequences (or dense windows) per step", type=positive)
    lr: float | None = setting(None, "learning rate", type=learning_rate,
                               default_text="1e-4 with LoRA; 3e-5 full, or 5e-4 full for a model under 50 M "
                               "parameters; 1e-3 for the CNN baseline")
    weight_decay: float = 0.01
    warmup: float = 0.1
    seeds: list[int] = setting([0], "seeds to train with", type=non_negative, nargs="+", metavar="N")
    patience: int = setting(3, "epochs without a better dev MCC (dense tasks: mean PR-AUC) before stopping",
                            type=positive)
    # The per-sequence cut-off of training, as finetune.json names it; what the model is then run on
    # (dev and test, predict, scan) it reads whole.
    max_tokens: int | None = setting(None, "longest training input in tokens, [CLS] and [SEP] included (dev and "
                                     "test are scored whole, as predict and scan read them)", type=input_tokens,
                                     default_text="a quarter of the longest training sequence in bp")
    merge: bool = setting(False, "save a whole merged model instead of the LoRA adapter")
    device: str = _device()
    dtype: str = _precision("bf16 autocast (auto on a GPU) or fp32 (auto on a CPU)")
    force: bool = _force()


# The settings that go with LoRA's adapters, and nothing else.
LORA_OPTIONS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "merge")
# The fine-tuning settings `evaluate`, which fine-tunes per task, offers too.
TRAINING_OPTIONS = ("method", "epochs", "batch_size", "lr", "seeds", "max_tokens", "device")
# Those `cnn`, which trains the CNN baseline of dense tasks with the fine-tuning loop, offers.
CNN_OPTIONS = ("epochs", "batch_size", "lr", "seeds", "patience", "device", "dtype", "force")


@dataclass
class EvaluateSettings:
    baseline: list[str] = setting(["kmer"], "baselines beside the model: kmer (k-mer logistic regression), cnn (a "
                                  "small CNN on one-hot sequence), or none", nargs="+", choices=["kmer", "cnn", "none"])
    kmer: int = setting(6, "k of the k-mer baseline", type=positive)


# A FASTA scan's unit of work, of chunks (--chunk) and of the loader's workers: windows, or a per-base
# model's cores.
BLOCK_WINDOWS = 512
DENSE_BLOCK_CORES = 16


@dataclass
class ScanSettings:
    min_depth: int | None = setting(None, "with --bam: scan the reference where at least DEPTH reads align",
                                    flag="--covered", type=positive, metavar="DEPTH")
    regions: Path | None = setting(None, "scan only these regions (on the strands of --strands: a BED's strand "
                                   "column is not read)", type=Path, metavar="BED", group="where")
    contigs: list[str] | None = setting(None, "scan only these contigs", nargs="+", metavar="CONTIG", group="where")
    window: int | None = setting(None, "window length in bp (for a per-base model, its flanks included)",
                                 type=positive, default_text="the task's")
    stride: int | None = setting(None, "window scans: bp between window starts; a call's peak is exact to the stride",
                                 type=positive, default_text="a quarter of the window")
    strands: str = setting("both", "strands to scan", choices=["both", "+", "-"])
    labels: list[str] | None = setting(None, "labels to call, by name or index", nargs="+", metavar="LABEL",
                                       default_text="all but 0")
    threshold: float = setting(0.5, "smallest probability called, in thousandths as the BED score holds it: a "
                               "probability is rounded to thousandths (0.4996 is called at 0.5), the threshold up "
                               "(no call scores below 1000 × it)", type=float)
    min_distance: int | None = setting(None, "bp between two calls of one label and strand: a base is called only "
                                       "where no base this close scores higher (in reads mode, along each read, per-base models only)",
                                       type=positive,
                                       default_text="the label's default scan-eval tolerance, at least 10; in window "
                                       "scans at least the stride")
    merge: bool = setting(False, "window scans of a genome: merge overlapping or touching windows above the threshold "
                          "into one call (a region) instead of calling peaks")
    top_k: int | None = setting(None, "keep only the K best calls of each label, over both strands and every "
                                "contig (of equal scores, the first in the genome), of those above --threshold "
                                "(0: the K best peaks of the scores)", type=positive, metavar="K")
    chunk: str | None = setting(None, "scan only the I-th (0-based) of N parts of the genome, of about equal "
                               f"work: a FASTA scan's in whole blocks of {BLOCK_WINDOWS} windows ({DENSE_BLOCK_CORES} "
                               "cores of a per-base model), so a small one may leave parts empty", metavar="I/N")
    max_n: float = setting(0.1, "window scans (of the genome or of reads): skip windows with more than this "
                           "fraction of N (a per-base scan scores every A, C, G and T, and no N)", type=fraction)
    min_mapq: int = setting(0, "with --bam: ignore alignments below this MAPQ", type=mapq)
    min_reads: int = setting(1, "reads mode: sites with fewer supporting reads (a pair's mates count once) are "
                           "dropped", type=positive)
    batch_tokens: int | None = _batch_tokens()
    workers: int | None = _workers("DataLoader workers reading and tokenising")
    device: str = _device()
    dtype: str = _precision("bf16 on a GPU (auto), fp32 on the CPU")
    compile: bool = _compile()


@dataclass
class PredictSettings:
    batch_tokens: int | None = _batch_tokens()
    device: str = _device()
    dtype: str = _precision("bf16 on a GPU (auto), fp32 on the CPU")


INFO_KEY = re.compile(r"[A-Za-z_][0-9A-Za-z_.]*")  # VCF 4.3's INFO keys (1000G aside)


@dataclass
class VariantSettings:
    distance: int = setting(50, "bp either side of the bases a variant changes where score changes are looked for "
                            "(SpliceAI's default)", type=non_negative)
    info_key: str = setting("DNABERT2", "the INFO field the scores go into")
    index: str = setting("auto", "the index beside the VCF: tbi (tabix's), csi (bcftools' default, for any contig "
                         "length), or auto: tbi unless a record lies past 2^29 bp, which only csi indexes",
                         choices=("auto", "tbi", "csi"))
    batch_tokens: int | None = _batch_tokens()
    device: str = _device()
    # bf16 blurs score changes (see MutagenesisSettings), below the levels SpliceAI-style scores are read
    # at (0.2, 0.5); it is the default for a whole VCF's speed, fp32 a choice.
    dtype: str = _precision("bf16 on a GPU (auto; it moved the example models' score changes of a VCF by up to 0.009: "
                            "fp32 to read changes that small), fp32 on the CPU")


@dataclass
class MutagenesisSettings:
    label: str | None = setting(None, "the label whose score is explained, by name or index",
                                default_text="the first site label")
    at: int | None = setting(None, "per-base models: the base whose score is explained (its contig position, 1-based, within --region)", type=positive,
                             default_text="the region's best-scoring base")
    strand: str = setting("+", "the strand the model reads", choices=["+", "-"])
    batch_tokens: int | None = _batch_tokens()
    device: str = _device()
    # Score changes are differences of nearly equal scores, which bf16's 8 bits of mantissa blur: on the
    # example's models (bf16 emulated on a CPU) changes moved by up to 0.013 and half their signs flipped.
    # A region's few thousand windows cost little in fp32.
    dtype: str = _precision("fp32, or bf16 autocast on a GPU (auto: bf16 on a GPU, fp32 on the CPU)", "fp32")


POOLINGS = ("mean", "cls", "max")  # dnabert2.model.heads.pool computes them


@dataclass
class EmbedSettings:
    pooling: str | None = setting(None, "one vector per sequence: the mean, the [CLS] state or the elementwise max of "
                                  "its token states ([CLS] and [SEP] included); tokens: one vector per token",
                                  choices=[*POOLINGS, "tokens"],
                                  default_text="an embedding model's own (saved with it), else mean")
    chunk_tokens: int | None = setting(None, "run sequences of more tokens than this in overlapping chunks of this "
                                       "many, each token's states averaged over the chunks holding it", type=positive,
                                       default_text="each sequence whole (ALiBi takes any length)")
    overlap: int | None = setting(None, "tokens shared by neighbouring chunks (the last, flush with the sequence's "
                                  "end, may share more)", type=non_negative,
                                  default_text="a quarter of --chunk-tokens")
    batch_tokens: int | None = _batch_tokens()
    device: str = _device()
    dtype: str = _precision("bf16 on a GPU (auto), fp32 on the CPU")


# One tolerance per kind of site matching the registry knows (--splice-tolerance, --tss-tolerance, …).
ScanEvalSettings = dataclasses.make_dataclass("ScanEvalSettings", [
    *((f"{name}_tolerance", int, setting(default, f"{help_text}; per-base PR-AUC and top-k too score each site by "
                                                    "its best base that near, and count no base that near as a negative",
                                         type=non_negative))
      for name, (default, help_text) in TOLERANCES.items()),
    ("regions", Path | None, setting(None, "count only annotated sites inside these regions (where the scan looked)",
                                     type=Path, metavar="BED", group="where")),
    ("contigs", list[str] | None, setting(None, "count only annotated sites on these contigs", nargs="+",
                                          metavar="CONTIG", group="where")),
    ("min_intron", int | None, _min_intron(f"{MIN_INTRON}; with --held-out, the task's", default=None)),
    ("biotypes", list[str] | None, _biotypes("every transcript; with --held-out, the task's")),
    ("tags", list[str] | None, _tags("every transcript; with --held-out, the task's")),
])

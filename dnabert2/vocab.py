"""Learning a BPE vocabulary (`dnabert2 vocab`) with Hugging Face `tokenizers` from windows sampled
over genomes, saved in the released DNABERT-2 layout that dnabert2.tokenizer loads."""

import bisect
import json
import logging
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from Bio.Seq import reverse_complement
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from tqdm import tqdm

from .errors import UserError
from .options import add_settings, output_file, settings_from, settings_with
from .outputs import bgzip_named, check_outputs, write_json, written_together
from .sequences import Fasta, check_distinct, check_distinct_contigs
from .settings import VocabSettings
from .tokenizer import ALPHABET, MIN_VOCAB_SIZE, SPECIAL_TOKENS, bp_per_token, save_tokenizer

log = logging.getLogger(__name__)


def _with_dnabert2_layout(tokenizer: Tokenizer) -> Tokenizer:
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)],
    )
    return tokenizer


# tokenizers sets aside memory for the whole vocabulary at once: a billion tokens asked 70 GB and aborted
# in Rust. DNA BPE vocabularies are thousands (DNABERT-2's 4,096); a model's embedding grows with them.
MAX_VOCAB_SIZE = 1 << 20


def check_vocab_size(vocab_size: int) -> None:
    if vocab_size < MIN_VOCAB_SIZE:
        raise UserError(
            f"vocabulary size {vocab_size} is smaller than the {len(ALPHABET)}-letter alphabet plus "
            f"{len(SPECIAL_TOKENS)} special tokens ({MIN_VOCAB_SIZE})"
        )
    if vocab_size > MAX_VOCAB_SIZE:
        raise UserError(f"vocabulary size {vocab_size:,} is more than {MAX_VOCAB_SIZE:,} tokens (DNABERT-2's is 4,096)")


def train_tokenizer(sequences: Iterable[str], vocab_size: int = 4096, count: int | None = None,
                    progress: bool = False) -> Tokenizer:
    """Learn a BPE vocabulary of `vocab_size` tokens from upper-case ACGT sequences."""
    check_vocab_size(vocab_size)
    tokenizer = _with_dnabert2_layout(Tokenizer(models.BPE(unk_token="[UNK]")))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=list(ALPHABET),
        limit_alphabet=len(ALPHABET),
        show_progress=progress,
    )
    tokenizer.train_from_iterator(sequences, trainer, length=count)
    return tokenizer


def _distinct(rng: random.Random, n: int, count: int) -> Iterator[int]:
    """Distinct numbers below n in random order: `count` of them drawn at once, then more one by one
    (in place of windows that were dropped) until all n are drawn."""
    drawn = rng.sample(range(n), k=min(count, n))
    yield from drawn
    seen = set(drawn)
    while len(seen) < n:
        pick = rng.randrange(n)
        if pick not in seen:
            seen.add(pick)
            yield pick


def sample_windows(genomes: Sequence[Fasta], size: int, count: int, seed: int, progress: bool = False,
                   skip: Sequence[str] = ()) -> list[str]:
    """Up to `count` distinct, non-overlapping windows drawn uniformly over all genomes' bases (so a
    genome weighs by its size), each on a random strand, none from the contigs in `skip`; windows with
    anything but ACGT are dropped and others drawn in their place."""
    unknown = sorted(set(skip) - {contig for g in genomes for contig in g.lengths})
    if unknown:
        raise UserError(f"--heldout-contigs: no genome has a contig {unknown[0]!r}")
    long_enough = [(g, contig, length // size) for g in genomes for contig, length in g.lengths.items()
                   if length >= size]
    if not long_enough:
        raise UserError(f"no contig is as long as one window ({size} bp)")
    tiles = [tile for tile in long_enough if tile[1] not in skip]
    if not tiles:
        raise UserError(f"--heldout-contigs holds every contig as long as one window ({size} bp): none is left to learn from")
    total = sum(sum(g.lengths.values()) for g in genomes)
    short = sum(length for g in genomes for length in g.lengths.values() if length < size)
    if short > 0.05 * total:  # a fragmented assembly: its short contigs are no window's
        log.warning("%.0f%% of the genome bases lie on contigs shorter than one window (%d bp) and are not sampled",
                    100 * short / total, size)
    ends = []
    for _, _, n in tiles:
        ends.append((ends[-1] if ends else 0) + n)
    rng = random.Random(seed)
    sequences = []
    with tqdm(total=min(count, ends[-1]), desc="sampling windows", unit="window", disable=not progress) as bar:
        for pick in _distinct(rng, ends[-1], count):
            i = bisect.bisect_right(ends, pick)
            genome, contig, _ = tiles[i]
            start = (pick - (ends[i - 1] if i else 0)) * size
            sequence = genome.fetch(contig, start, start + size)
            if set(sequence) - set(ALPHABET):
                continue
            sequences.append(reverse_complement(sequence) if rng.random() < 0.5 else sequence)
            bar.update()
            if len(sequences) == count:
                break
    return sequences


def learn_vocabulary(genomes: Sequence, out, settings: VocabSettings | None = None, *, progress: bool = False,
                     report_path=None, **overrides) -> dict:
    """Learn a vocabulary from windows sampled from `genomes` (FASTA/GenBank paths), save it to `out`
    and return a report with base pairs per token on held-out windows (also written as JSON to
    `report_path` when given). Settings: a VocabSettings, or its fields as keywords."""
    s = settings_with(VocabSettings, settings, overrides)
    if bgzip_named(out):
        raise UserError(f"{out}: a tokenizer.json is plain JSON, as tokenizers and transformers read it; give it a "
                        ".json name")
    vocab_size, window, sample_bp, heldout, seed = s.vocab_size, s.window, s.sample_bp, s.heldout, s.seed
    check_vocab_size(vocab_size)
    if not 0 < heldout < 1:
        raise UserError(f"held-out fraction must be between 0 and 1, not {heldout}")
    if window < 10:
        raise UserError(f"window length must be at least 10 bp, not {window}")
    check_distinct(genomes)
    fastas = [Fasta(path, validate=True) for path in genomes]
    try:
        check_distinct_contigs((fasta.path, fasta.lengths) for fasta in fastas)
        wanted = max(2, round(sample_bp / window / (1 - heldout)))
        sequences = sample_windows(fastas, window, wanted, seed, progress, s.heldout_contigs)
    finally:
        for fasta in fastas:
            fasta.close()
    n_heldout = max(1, round(len(sequences) * heldout))
    if len(sequences) - n_heldout < 1:
        raise UserError(f"too little ACGT sequence for windows of {window} bp: found {len(sequences)} window(s), "
                        f"{n_heldout} of them held out (--heldout {heldout}), none left to learn from")
    heldout_windows, training = sequences[:n_heldout], sequences[n_heldout:]
    if n_heldout > 2 * heldout * len(sequences):  # at least one window is held out, however few there are
        log.warning("only %d windows: %d held out (%.0f%%, not the %.0f%% asked)", len(sequences), n_heldout,
                    100 * n_heldout / len(sequences), 100 * heldout)
    started = time.perf_counter()
    tokenizer = train_tokenizer(training, vocab_size, len(training), progress)
    seconds = time.perf_counter() - started
    if tokenizer.get_vocab_size() < vocab_size:
        log.warning("learned only %d tokens of the %d asked for: the sample is too small", tokenizer.get_vocab_size(), vocab_size)
    report = {
        "vocab_size": tokenizer.get_vocab_size(),
        "training_windows": len(training),
        "training_bp": len(training) * window,
        "heldout_windows": n_heldout,
        "heldout_bp_per_token": round(bp_per_token(tokenizer, heldout_windows), 3),
        "training_seconds": round(seconds, 2),
        "seed": seed,
        "heldout_contigs": sorted(s.heldout_contigs),
    }
    log.info("vocabulary: %s", json.dumps(report))
    with written_together():  # a report that cannot be written leaves no vocabulary either
        save_tokenizer(tokenizer, out)
        if report_path:
            write_json(report_path, report)
    return report


def add_arguments(parser) -> None:
    parser.description = ("Learn a BPE vocabulary with Hugging Face tokenizers from windows sampled uniformly over one "
                          "or more genomes (both strands), and report base pairs per token on held-out windows. The "
                          "same inputs and seed give the same vocabulary.")
    parser.add_argument("--genome", action="append", required=True, type=Path, metavar="FASTA",
                        help="genome FASTA or GenBank (repeat for several genomes); plain or bgzip FASTA is read by "
                        "region, gzip and GenBank whole into memory")
    parser.add_argument("--out", required=True, type=output_file, help="output tokenizer.json")
    parser.add_argument("--report", type=output_file, help="also write the report (vocabulary size, bp/token, timing) as JSON")
    add_settings(parser, VocabSettings)


def run(args) -> None:
    check_outputs([args.out, args.report], args.genome)
    report = learn_vocabulary(args.genome, args.out, settings_from(args, VocabSettings), progress=not args.quiet,
                              report_path=args.report)
    print(f"{args.out}: {report['vocab_size']} tokens, {report['heldout_bp_per_token']} bp/token on "
          f"{report['heldout_windows']} held-out windows, learned in {report['training_seconds']} s")

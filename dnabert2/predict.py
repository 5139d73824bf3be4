"""`dnabert2 predict`: a fine-tuned model's answer for each given sequence, as a TSV row.

A window classifier gives each label's probability. A per-base model (a dense head, or the CNN
baseline) gives, for each site label, the best probability over the sequence's bases and the 0-based
offset of that base; the predicted label is the site label with the highest such probability when it
reaches 0.5, else the background label. Sequences are read, scored and written a block at a time, so
memory stays flat however many there are."""

import logging
from pathlib import Path

import numpy as np

from .attention import TooLong
from .bases.inputs import encode_bases
from .devices import batch_tokens, padded_batches
from .errors import UserError
from .hub import model_path
from .options import add_settings, model_argument, output_file, progress, settings_from, settings_with
from .outputs import TabSeparated, atomic_text, check_outputs, check_table_name, files_in, standard_output
from .scan.dense import DenseScanner, load_any_scanner, read_tokenizer, scored_bases
from .scan.model import Scanner
from .sequences import check_sources, in_blocks, read_sequences
from .settings import PredictSettings
from .tokenizer import frame, token_ids

log = logging.getLogger(__name__)

# Sequences read, scored and written at a time: at most this many, holding at most this many bases.
BLOCK, BLOCK_BASES = 4096, 500_000
CALLED = 0.5  # a per-base model's site label is predicted from this probability on


def window_rows(scanner: Scanner, tokenizer, sequences: list[str], tokens: int) -> list[list]:
    """Each label's probability, then the most probable label."""
    whole = token_ids(tokenizer, sequences)
    order = sorted(range(len(whole)), key=lambda i: len(whole[i]))
    framed = frame([whole[i] for i in order])  # uncut: every base is read, as in a scan
    lengths = np.array([len(ids) for ids in framed])
    rows = [None] * len(sequences)
    for run in padded_batches(lengths, tokens):
        ids = np.fromiter((t for ids in framed[run] for t in ids), dtype=np.int64)
        for i, p in zip(order[run], scanner.probabilities(ids, lengths[run], tokens)):
            rows[i] = [*map(float, p), scanner.labels[int(p.argmax())]]
    return rows


def base_rows(scanner: DenseScanner, tokenizer, sequences: list[str], tokens: int) -> list[list]:
    """For each site label its best per-base probability and that base's offset, then the label; the
    sequences come with the model's flanks of context (read_sequences)."""
    # By length, so that padded batches waste little; rows keep input order.
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    flanked = [sequences[i] for i in order]
    encoded = encode_bases(tokenizer, flanked) if tokenizer else None
    scored = [p for run in padded_batches(scanner.sizes(encoded, flanked), tokens)
              for p in scanner.probabilities(encoded[run] if encoded is not None else None, flanked[run], tokens)]
    rows = [None] * len(sequences)
    for i, probabilities in zip(order, scored):
        # Over the bases a scan scores: an N's probability is not a site's.
        core = sequences[i][scanner.flank:len(sequences[i]) - scanner.flank]
        read = scored_bases(core)
        if not read.any():  # no base to point at: empty fields (NA to pandas and R), not offset 0
            rows[i] = ["", ""] * (len(scanner.labels) - 1) + [scanner.labels[0]]
            continue
        sites = np.where(read[:, None], probabilities[:, 1:], 0)
        best, at = sites.max(0), sites.argmax(0)
        top = int(best.argmax())
        label = scanner.labels[top + 1] if best[top] >= CALLED else scanner.labels[0]
        rows[i] = [value for pair in zip(map(float, best), map(int, at)) for value in pair] + [label]
    return rows


def header(scanner) -> list[str]:
    if scanner.dense:
        return ["id", *(f"{kind}_{label}" for label in scanner.labels[1:] for kind in ("p", "at")), "label"]
    return ["id", *(f"p_{label}" for label in scanner.labels), "label"]


def predict(model, out, *, csv_file=None, fasta=None, bed=None, genome=None, settings: PredictSettings | None = None,
            show_progress: bool = False, **overrides) -> int:
    """Write `out` (TSV): one row per input sequence, in input order; returns the number of rows."""
    s = settings_with(PredictSettings, settings, overrides)
    out = Path(out)
    check_outputs([out], [csv_file, fasta, bed, genome, *files_in(model)])
    check_table_name(out, "predict")
    check_sources(csv_file, fasta, bed, genome)
    folder = model_path(model)
    scanner = load_any_scanner(folder, device=s.device, dtype=s.dtype)
    records = read_sequences(csv_file, fasta, bed, genome, flank=scanner.flank if scanner.dense else 0)
    tokenizer = read_tokenizer(scanner)
    tokens = batch_tokens(s.batch_tokens, scanner.device)
    count = 0
    with atomic_text(out) as handle:
        table = TabSeparated(handle)
        table.writerow(header(scanner))
        for block in in_blocks(records, BLOCK, BLOCK_BASES):
            names, sequences = zip(*block)
            score = base_rows if scanner.dense else window_rows
            try:
                rows = score(scanner, tokenizer, list(sequences), tokens)
            except TooLong as error:
                raise UserError(f"{error}; `dnabert2 scan` reads a genome's long sequences in windows") from None
            table.writerows([name, *row] for name, row in zip(names, rows))
            count += len(block)
            if show_progress:
                log.info("%d sequences", count)
    return count


def add_command(parser, description: str, model_help: str, out_help: str, cls, bed_help: str = "") -> None:
    """The options of a command that runs a model on given sequences (predict, embed); bed_help: what
    the command does with a --bed region beyond reading it."""
    parser.description = description
    parser.add_argument("--model", required=True, type=model_argument,
                        help=f"{model_help}, or a Hugging Face Hub id (owner/name[@revision])")
    given = parser.add_argument_group("sequences (one of)")
    given.add_argument("--csv", type=Path, help="a CSV with a 'sequence' column (ids from an 'id' column, else, or where "
                       "blank, a 'name' column, else the row number), such as a GUE task's test.csv")
    given.add_argument("--fasta", type=Path, help="a FASTA of sequences (plain or gzip); ids are the record names, which "
                       "may repeat")
    given.add_argument("--bed", type=Path, help="regions of --genome (ids from the name column, else "
                       "contig:start-end(strand)); '-' strand regions are reverse-complemented" + bed_help)
    given.add_argument("--genome", type=Path, metavar="FASTA", help="the genome the --bed regions lie on")
    parser.add_argument("--out", required=True, type=output_file, help=out_help)
    add_settings(parser, cls)


def run_command(function, cls, args, out) -> None:
    count = function(args.model, out, csv_file=args.csv, fasta=args.fasta, bed=args.bed, genome=args.genome,
                     settings=settings_from(args, cls), show_progress=progress(args))
    print(f"{args.out}: {count} sequences")


def add_arguments(parser) -> None:
    add_command(parser, "Score sequences with a fine-tuned model (a window classifier, a per-base model or the CNN "
                "baseline): a TSV with a row per sequence, in input order: its id, the probability of each label "
                "(per-base models: each site label's best probability over the A, C, G and T and the 0-based offset of that "
                "base along the sequence as read, from a '-' region's end) and the predicted label.", "fine-tuned model folder", "output TSV (bgzip-compressed when named .gz; - for standard output)", PredictSettings,
                "; a per-base model reads the genome around each as its flanks, as a scan does")


def run(args) -> None:
    with standard_output(args.out) as out:
        run_command(predict, PredictSettings, args, out)

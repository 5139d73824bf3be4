"""`dnabert2 variants`: how each variant of a VCF/BCF changes a per-base model's scores nearby.

For every ALT allele and every site label (donor, acceptor; TSS; …) the largest gain and the largest
loss of the label's per-base probability within ±distance bp of the bases the allele changes, over
both strands, and where each happens (bp from the variant's first base, POS: SpliceAI's DP
convention). The bases REF and ALT share at either end are no change (as `bcftools norm` trims them):
GGCT>GCT deletes one G as GG>G does, whatever another ALT of the record made REF hold. Deleted bases
score 0 in the alternative sequence; bases an insertion adds count at the base before them (their
best), or at a contig's start at the base after.

Variants are scored a block of records at a time, in cores of the model's training length laid on a
fixed grid along each contig, each half a core after the last (with flanks of context, as a scan reads
them): a variant is scored in the core whose middle lies nearest, so its context is the same at every
--distance (up to about a quarter core). Variants in one core share its reference windows (one per
strand), and each ALT costs its alternative windows, the same window with only that allele applied.
A variant's scores depend on it alone, never on its neighbours in the file. Every input record is
written out, in order: scored ALTs get the INFO field, the others say why not (REF unlike the
reference, an unknown contig, a symbolic allele)."""

import contextlib
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pysam
from Bio.Seq import reverse_complement

from .bases.inputs import encode_bases
from .devices import batch_tokens
from .errors import UserError, first_names, naming_hint
from .hub import model_name, model_path
from .options import add_settings, model_argument, output_file, progress, settings_from, settings_with
from .outputs import (TabSeparated, atomic_output, atomic_text, bgzip_named, check_outputs, check_table_name, files_in, plain_suffix,
                      tabix_suffix, written_together)
from .scan.dense import DenseScanner, load_dense_scanner, read_tokenizer, scored_bases
from .scan.model import is_window_classifier
from .sequences import Fasta
from .sequences.fasta import check_file, compression
from .settings import INFO_KEY, VariantSettings

log = logging.getLogger(__name__)

BLOCK = 2048  # records read, scored and written at a time
# Why a record is not scored (INFO/{info key}_UNSCORED), in the order they are looked for.
REASONS = ("unknown_contig", "outside_contig", "unscorable_ref", "ref_mismatch", "ref_too_long", "no_alt")
BASES = set("ACGT")
# An ALLELE subfield (a breakend's holds its mate's contig, whose name may hold '|' or ';') escaped as
# VCF escapes INFO values, so that the value splits on '|' into its fields.
ESCAPED = str.maketrans({c: f"%{ord(c):02X}" for c in "%|;=,"})
# SpliceAI's order and names, used when the model's site labels are donor and acceptor.
SPLICEAI = {"acceptor": "A", "donor": "D"}
END = "END"  # the INFO key of a record's last reference base
END_META = ("Integer", "End position of the variant described in this record")  # VCF 4.3's declaration


@dataclass
class Variant:
    record: int  # index in the block
    allele: int  # ALT index
    contig: str
    position: int  # 0-based first base that REF and ALT do not share
    ref: str  # the bases changed (empty for an insertion)
    alt: str  # what they become (empty for a deletion)
    anchor: int  # 0-based POS, which positions are given from

    @classmethod
    def of(cls, record: int, allele: int, contig: str, start: int, ref: str, alt: str) -> "Variant":
        """An ALT allele of a record at `start`, less the bases it shares with REF at the end, then at
        the start."""
        while ref and alt and ref[-1] == alt[-1]:
            ref, alt = ref[:-1], alt[:-1]
        shared = next((i for i, (a, b) in enumerate(zip(ref, alt)) if a != b), min(len(ref), len(alt)))
        return cls(record, allele, contig, start + shared, ref[shared:], alt[shared:], start)

    @property
    def changed(self) -> tuple[int, int]:
        """The reference bases it changes; for an insertion, the base its bases count at."""
        if self.ref:
            return self.position, self.position + len(self.ref)
        return (self.position - 1, self.position) if self.position > 0 else (0, 1)


def fields(labels: list[str]) -> list[str]:
    """The |-separated fields of the INFO value, after ALLELE: scores, then positions."""
    if set(labels) == set(SPLICEAI):
        named = [(f"{SPLICEAI[label]}G", f"{SPLICEAI[label]}L") for label in ("acceptor", "donor")]
    else:
        named = [(f"{label}_GAIN", f"{label}_LOSS") for label in labels]
    return [f"DS_{name}" for pair in named for name in pair] + [f"DP_{name}" for pair in named for name in pair]


def site_labels(labels: list[str]) -> list[str]:
    """Site labels in the order their fields appear (SpliceAI's order for a splice model)."""
    sites = labels[1:]
    return ["acceptor", "donor"] if set(sites) == set(SPLICEAI) else sites


class VariantScorer:
    def __init__(self, scanner: DenseScanner, tokenizer, fasta: Fasta, distance: int, tokens: int):
        self.scanner, self.tokenizer, self.fasta = scanner, tokenizer, fasta
        self.distance, self.tokens = distance, tokens
        # A longer REF or ALT (a structural variant's, kilobases) would need windows of its own as long: not scored.
        self.longest_allele = scanner.core
        self.order = [scanner.labels.index(label) for label in site_labels(scanner.labels)]
        self.fields = fields(site_labels(scanner.labels))

    def forward_scores(self, sequences: list[str]) -> list[np.ndarray]:
        """Per core base and site label, the probabilities on both strands, in forward coordinates:
        arrays (2, core bases, labels) for windows given on the forward strand."""
        both = [*sequences, *map(reverse_complement, sequences)]
        encoded = encode_bases(self.tokenizer, both) if self.tokenizer else None
        scored = self.scanner.probabilities(encoded, both, self.tokens)
        n = len(sequences)
        return [np.stack([scored[i][:, self.order], scored[n + i][::-1, self.order]]) for i in range(n)]

    def span(self, v: Variant) -> tuple[int, int]:
        """The reference bases a variant's changes are looked for at: ±distance of those it changes."""
        lo, hi = v.changed
        return max(lo - self.distance, 0), min(hi + self.distance, self.fasta.lengths[v.contig])

    def core_of(self, v: Variant) -> tuple[int, int]:
        """The core a variant is scored in: of a grid of cores half a core apart, the one whose middle
        lies nearest the variant, which holds its span when that reaches at most about a quarter core
        either way; a longer span gets a core of its own. Either way it depends on the variant alone,
        never on its neighbours, and on --distance only in the second case. None reaches past the
        contig: the model reads a contig's ends as a scan does, beside a flank of N, not beside a
        core's worth more."""
        core, length = self.scanner.core, self.fasta.lengths[v.contig]
        first, last = self.span(v)
        step = core // 2
        middle = sum(v.changed) // 2
        start = max(0, round((middle - core / 2) / step)) * step if step else first
        start, end = (start, start + core) if start <= first and last <= start + core else \
            (first, max(last, first + core))
        return (start, end) if end <= length else (max(0, length - (end - start)), length)

    def score(self, variants: list[Variant]) -> dict[tuple[int, int], tuple]:
        """(record, allele) → (largest and smallest change per base and label, positions from its POS)
        for variants of one contig; those in one core share its reference windows."""
        flank = self.scanner.flank
        out = {}
        cores = {}
        for v in variants:
            cores.setdefault(self.core_of(v), []).append(v)
        for (start, end), members in cores.items():
            reference = self.fasta.fetch_padded(members[0].contig, start - flank, end + flank)
            alternatives = []
            for v in members:
                at = v.position - (start - flank)
                alternatives.append(reference[:at] + v.alt + reference[at + len(v.ref):])
            ref_scores, *alt_scores = self.forward_scores([reference, *alternatives])
            for v, alt in zip(members, alt_scores):
                out[v.record, v.allele] = self.delta(v, start, ref_scores, alt, reference[flank:len(reference) - flank])
        return out

    def delta(self, v: Variant, start: int, ref: np.ndarray, alt: np.ndarray, bases: str):
        """Alternative minus reference scores over the variant's span, in reference coordinates;
        bases: the core's reference bases, from `start`."""
        # Past a contig's ends lies no base (only the N that pad the windows): no position there.
        first, last = self.span(v)
        ref_part = ref[:, first - start:last - start]  # (2, span, labels)
        matched = min(len(v.ref), len(v.alt))
        before = alt[:, first - start:v.position + matched - start]
        after_from = v.position + len(v.alt) - start
        after = alt[:, after_from:after_from + last - v.position - len(v.ref)]
        deleted = np.zeros((2, len(v.ref) - matched, alt.shape[2]), dtype=alt.dtype)
        alt_part = np.concatenate([before, deleted, after], axis=1)
        if len(v.alt) > len(v.ref):  # inserted bases count at the last base before them, or the first after
            inserted = alt[:, v.position + matched - start:after_from].max(1)
            at = max(v.position + matched - 1, first) - first
            alt_part[:, at] = np.maximum(alt_part[:, at], inserted)
        # An N or other IUPAC base of the reference has no score to gain or lose, as in a scan.
        unknown = ~scored_bases(bases[first - start:last - start])[:, None]
        change = (np.where(unknown, -np.inf, (alt_part - ref_part).max(0, initial=-np.inf)),
                  np.where(unknown, np.inf, (alt_part - ref_part).min(0, initial=np.inf)))
        return change, np.arange(first, last) - v.anchor


def summarise(change, positions) -> tuple[list[float], list[int]]:
    """Per label, the largest gain and loss and where they happen."""
    gains, losses = change
    scores, where = [], []
    for label in range(gains.shape[1]):
        gain_at, loss_at = int(gains[:, label].argmax()), int(losses[:, label].argmin())
        scores += [max(0.0, float(gains[gain_at, label])), max(0.0, -float(losses[loss_at, label]))]
        where += [int(positions[gain_at]), int(positions[loss_at])]
    return scores, where


def why_unscored(fasta: Fasta, record, longest_ref: int) -> str | None:
    """The reason (of REASONS) a record is not scored, or None."""
    ref = record.ref or ""
    # REF's own length: record.stop follows INFO/END, which symbolic and gVCF records carry.
    end = record.start + len(ref)
    if record.contig not in fasta.lengths:
        return "unknown_contig"
    if record.start < 0 or end > fasta.lengths[record.contig]:  # POS 0 marks a telomere
        return "outside_contig"
    if not scorable(ref):  # missing ('.'), N or another IUPAC code
        return "unscorable_ref"
    if fasta.fetch(record.contig, record.start, end) != ref.upper():
        return "ref_mismatch"
    if len(ref) > longest_ref:
        return "ref_too_long"
    if not record.alts:  # ALT '.': a reference site (of a gVCF, say), nothing to score
        return "no_alt"
    return None


def scorable(allele: str) -> bool:
    return bool(allele) and set(allele.upper()) <= BASES


def score_variants(model, vcf, fasta, out, *, tsv=None, settings: VariantSettings | None = None,
                   show_progress: bool = False, **overrides) -> dict:
    """Annotate `vcf` into `out` (bgzip VCF with a tabix index; `tsv` a table beside it); returns the
    counts of records scored and not scored, by reason."""
    s = settings_with(VariantSettings, settings, overrides)
    out = Path(out)
    if not (bgzip_named(out) and plain_suffix(out) == ".vcf"):
        raise UserError(f"{out}: the output is bgzip-compressed VCF; give it a .vcf.gz (or .vcf.bgz) name")
    check_outputs([out, tsv], [vcf, fasta, *files_in(model)])
    check_table_name(tsv, "--tsv")
    if not INFO_KEY.fullmatch(s.info_key) or s.info_key == END:
        raise UserError(f"--info-key {s.info_key!r}: give a new INFO key of letters, digits, '_' and '.', not starting "
                        "with a digit (not END)")
    if str(vcf) == "-" or Path(vcf).exists() and not Path(vcf).is_file():
        what = "a folder" if Path(vcf).is_dir() else "standard input" if str(vcf) == "-" else "not a file (a pipe?)"
        raise UserError(f"{vcf}: {what}; variants reads the VCF twice, a check and then the scoring, so give it a file")
    if compression(check_file(vcf)) == "gzip":
        raise UserError(f"{vcf}: compressed with plain gzip, which pysam cannot read as VCF: recompress it with bgzip "
                        "(zcat it | bgzip)")
    folder = model_path(model)
    if is_window_classifier(folder):
        raise UserError(f"{model_name(folder)}: variants are scored with a per-base model (`finetune` on a `tasks --dense` task, "
                        "or `cnn`); this is a window classifier")
    scanner = load_dense_scanner(folder, device=s.device, dtype=s.dtype)
    tokenizer = read_tokenizer(scanner)
    labels = site_labels(scanner.labels)
    names = fields(labels)  # the scorer's fields too
    try:
        reader = pysam.VariantFile(str(vcf))
        declare_fixed(reader.header, s.info_key)
        declared = reader.header.info[END]
        if (declared.number, declared.type) != (1, "Integer"):  # pysam could not write the END it keeps
            raise UserError(f"{vcf}: its header declares INFO/END as Number={declared.number},Type={declared.type}; "
                            "VCF's END is Number=1,Type=Integer")
        with Fasta(fasta) as genome:
            furthest = first_pass(reader.header, vcf, fasta, genome.lengths, s.info_key, tsv is not None)
    except (OSError, ValueError) as error:
        raise UserError(f"{vcf}: cannot read it as VCF/BCF ({error})") from None
    header = reader.header.copy()
    described = (f"DNABERT-2 per-base score changes within {s.distance} bp ({model_name(folder)}). "
                 f"Format: ALLELE|{'|'.join(names)}")
    # A '"' (in the model's name) would end the description early, and htslib drop the line.
    header.add_meta("INFO", items=[("ID", s.info_key), ("Number", "A"), ("Type", "String"),
                                   ("Description", described.replace('"', "'"))])
    needed = tabix_suffix(furthest)
    index = needed if s.index == "auto" else f".{s.index}"
    if index == ".tbi" and needed == ".csi":
        raise UserError(f"--index tbi: {vcf} has a record past 2^29 bp, which a .tbi cannot index; give --index csi")
    counts = {"records": 0, "alleles_scored": 0, **dict.fromkeys(REASONS, 0), "alleles_unscorable": 0}
    with contextlib.ExitStack() as stack:
        stack.enter_context(written_together())  # the VCF and its table, or neither
        genome = stack.enter_context(Fasta(fasta))
        tmp = stack.enter_context(atomic_output(out, index))
        table = None
        if tsv is not None:
            handle = stack.enter_context(atomic_text(tsv))
            table = TabSeparated(handle)
            table.writerow(["contig", "pos", "id", "ref", "alt", "status", *names])
        scorer = VariantScorer(scanner, tokenizer, genome, s.distance, batch_tokens(s.batch_tokens, scanner.device))
        with pysam.VariantFile(str(tmp), "wz", header=header) as writer:
            records = iter(reader)
            while block := list(itertools.islice(records, BLOCK)):
                write_block(block, scorer, genome, s.info_key, writer, table, counts)
                if show_progress:
                    log.info("%d records", counts["records"])
        pysam.tabix_index(str(tmp), preset="vcf", force=True, csi=index == ".csi")
    reader.close()
    compared = counts["records"] - counts["unknown_contig"] - counts["outside_contig"] - counts["unscorable_ref"]
    if counts["ref_mismatch"] * 2 > compared:  # heard under -q: the counts alone are easily missed
        log.warning("%s: the REF of %d of %d records disagrees with %s: a VCF of another assembly?", vcf,
                    counts["ref_mismatch"], compared, fasta)
    return counts


def first_pass(header, vcf, fasta, lengths: dict[str, int], key: str, table: bool) -> int:
    """Before any record is scored: refuse an input the output could not index (records not sorted by
    contig and position), one this command annotated already under `key` (or under the key whose
    unscored flags `key` would seem to be), or one of another reference
    (none of its contigs in the FASTA); and add to the input's
    header a ##contig line for every contig the records name but the header lacks (many VCFs have
    none): htslib marks such records as errors and stops the process when one is written; the same for
    undeclared INFO, FORMAT and FILTER tags. Refuse alleles that are not text, and with a `table` an ID
    it could not hold. Returns the furthest end of a record (the index it needs: tabix_suffix)."""
    declared = set(header.contigs)
    for contig in declared & set(lengths):
        length = header.contigs[contig].length
        if length is not None and length != lengths[contig]:
            raise UserError(f"{vcf}: its header gives {contig} {length:,} bp, {fasta} {lengths[contig]:,} bp: is it the "
                            "reference the VCF was called against?")
    seen, last, furthest = {}, None, 0
    with pysam.VariantFile(str(vcf)) as records:
        declare_info(records.header, END, *END_META)  # END read as the scoring reads it: the index it needs
        for record in _read_on(records, vcf):
            furthest = max(furthest, record.stop)
            _check_text(record, vcf, table)
            if record.contig != last and record.contig in seen:
                raise UserError(f"{vcf}: records of {record.contig} are not together (sort it: bcftools sort)")
            if record.contig == last and record.start < seen[last]:
                raise UserError(f"{vcf}: not sorted by position at {record.contig}:{record.pos} (sort it: bcftools sort)")
            seen[record.contig], last = record.start, record.contig
        for name in (key, unscored_key(key)):
            if name in records.header.info:  # declared, or used without being declared
                raise UserError(f"{vcf}: already has an INFO/{name} field; give --info-key another name")
        stem = key.removesuffix(unscored_key(""))
        if stem != key and stem in records.header.info:
            raise UserError(f"{vcf}: has an INFO/{stem} field, and INFO/{key} would read as its records left "
                            "unscored; give --info-key another name")
        declare_assumed(header, records.header)
    missing = [contig for contig in seen if contig not in lengths]
    if seen and len(missing) == len(seen):
        raise UserError(f"{vcf}: none of its contigs ({first_names(missing, 3)}) is in {fasta}: is it the reference the "
                        f"VCF was called against?{naming_hint(missing, lengths)}")
    if missing:
        log.warning("%s: %d contig(s) not in %s, their records left unscored (unknown_contig): %s%s", vcf,
                    len(missing), fasta, first_names(missing), naming_hint(missing, lengths))
    for contig in seen:
        if contig not in declared:
            header.contigs.add(contig, length=lengths.get(contig))
    return furthest


def _check_text(record, vcf, table: bool) -> None:
    """Alleles that are not UTF-8 text (a REF, or a symbolic ALT such as <caf\xe9>), which scoring reads; and with a
    table, an ID it could not hold (htslib passes an ID's bytes through to the VCF unread)."""
    where = f"{vcf}: the {{}} of the record at {record.contig}:{record.pos} is not UTF-8 text"
    for field in ("ref", "alts"):
        try:
            getattr(record, field)
        except UnicodeDecodeError:
            raise UserError(where.format(field.upper().removesuffix("S")) + ": mend it") from None
    try:
        table and record.id
    except UnicodeDecodeError:
        raise UserError(where.format("ID") + ", which the table (--tsv) is written in: mend it, or drop the IDs "
                        "(bcftools annotate -x ID)") from None


def _read_on(records, vcf):
    """The records, an unreadable one named by the record before it."""
    after = "its header"
    try:
        for record in records:
            yield record
            after = f"the record at {record.contig}:{record.pos}"
    except (OSError, ValueError) as error:
        # htslib says "truncated file" of a malformed line too (a POS that is no number, columns missing).
        raise UserError(f"{vcf}: cannot read it as VCF/BCF after {after}: a malformed line, or the file is cut "
                        f"short ({error})") from None


def declare_assumed(header, parsed) -> None:
    """Declare in `header` the INFO, FORMAT and FILTER tags the records use but their header lacks, as
    htslib assumed them while reading (`parsed`: a header records were read with). Undeclared, htslib
    stops the process when such a record is written under the output's header."""
    for kind, mine, theirs in (("INFO", header.info, parsed.info), ("FORMAT", header.formats, parsed.formats),
                               ("FILTER", header.filters, parsed.filters)):
        for key, meta in theirs.items():
            if key in mine:
                continue
            shape = [] if kind == "FILTER" else [("Number", str(meta.number)), ("Type", meta.type)]
            header.add_meta(kind, items=[("ID", key), *shape, ("Description", "Not declared in the input's header")])


def unscored_key(key: str) -> str:
    """The INFO field of the records left unscored, named after the scores' key: two models' scores go
    into one VCF under two keys, each with its own reasons (a REF too long for one model's core may fit
    another's)."""
    return f"{key}_UNSCORED"


def declare_fixed(header, key: str) -> None:
    """INFO fields of a fixed meaning, declared in the input's header before any record is read, so that
    htslib reads them as they are written (it takes an undeclared one for a string): END as VCF 4.3
    declares it (pysam writes it, an integer, on every record with a symbolic allele such as <DEL>,
    END in the input or not), and the key's unscored_key."""
    declare_info(header, END, *END_META)
    declare_info(header, unscored_key(key), "String", f"Why the record was not scored: {', '.join(REASONS)}")


def declare_info(header, name: str, kind: str, description: str) -> None:
    """An INFO field of one value, unless the header declares it already."""
    if name not in header.info:
        header.add_meta("INFO", items=[("ID", name), ("Number", "1"), ("Type", kind), ("Description", description)])


def write_block(block, scorer: VariantScorer, genome: Fasta, key: str, writer, table, counts: dict) -> None:
    reasons, variants = {}, []
    for index, record in enumerate(block):
        reason = why_unscored(genome, record, scorer.longest_allele)
        if reason:
            reasons[index] = reason
            counts[reason] += 1
            continue
        for allele, alt in enumerate(record.alts or ()):
            # An ALT equal to REF changes nothing.
            if scorable(alt) and alt.upper() != record.ref.upper() and len(alt) <= scorer.longest_allele:
                variants.append(Variant.of(index, allele, record.contig, record.start, record.ref.upper(), alt.upper()))
    scores = {}
    variants.sort(key=lambda v: (v.contig, v.position))
    for _, same_contig in itertools.groupby(variants, key=lambda v: v.contig):
        scores.update(scorer.score(list(same_contig)))
    blank = ["."] * len(scorer.fields)  # the fields of an allele not scored
    for index, record in enumerate(block):
        counts["records"] += 1
        record.translate(writer.header)
        if index in reasons:
            record.info[unscored_key(key)] = reasons[index]
            for alt in record.alts or ".":
                row(table, record, alt, reasons[index], blank)
        else:
            values = []
            for allele, alt in enumerate(record.alts):
                if (index, allele) not in scores:
                    counts["alleles_unscorable"] += 1
                    values.append("|".join([alt.translate(ESCAPED), *blank]))
                    row(table, record, alt, "unscorable_allele", blank)
                    continue
                counts["alleles_scored"] += 1
                numbers, where = summarise(*scores[index, allele])
                cells = [f"{n:.4f}" for n in numbers] + [str(w) for w in where]
                values.append("|".join([alt.translate(ESCAPED), *cells]))
                row(table, record, alt, "scored", cells)
            record.info[key] = tuple(values)
        writer.write(record)


def row(table, record, alt: str, status: str, cells: list[str]) -> None:
    """One table row per ALT (one for a record without any): every record of the input appears."""
    if table is not None:
        table.writerow([record.contig, record.pos, record.id or ".", record.ref or ".", alt, status, *cells])


def add_arguments(parser) -> None:
    parser.description = ("Score the variants of a VCF/BCF with a per-base model: for each ALT allele and site label, "
                          "the largest gain and loss of the per-base probability within --distance bp of the variant, "
                          "on either strand, and where they happen (for a splice model SpliceAI's DS_AG, DS_AL, "
                          "DS_DG, DS_DL and DP_ fields in its order, without its gene SYMBOL). Writes the same VCF "
                          "with the INFO field, bgzip-compressed and tabix-indexed, every record kept in order; "
                          "records whose REF differs from the reference, or that cannot be scored, are flagged in "
                          "INFO/KEY_UNSCORED (KEY the --info-key: DNABERT2_UNSCORED by default) and counted, not "
                          "scored.")
    parser.add_argument("--model", required=True, type=model_argument, help="per-base model folder (`finetune` on a dense task, "
                        "or `cnn`), or a Hugging Face Hub id (owner/name[@revision])")
    parser.add_argument("--vcf", required=True, type=Path, help="variants: VCF, bgzip VCF or BCF (a file: it is read twice)")
    parser.add_argument("--fasta", required=True, type=Path, help="the reference genome the VCF was called against")
    parser.add_argument("--out", required=True, type=output_file, help="output VCF (.vcf.gz, with its index beside it: --index)")
    parser.add_argument("--tsv", type=output_file, help="also write a table: a row per ALT allele, one for a record "
                        "without any (bgzip-compressed when named .gz)")
    add_settings(parser, VariantSettings)


def run(args) -> None:
    counts = score_variants(args.model, args.vcf, args.fasta, args.out, tsv=args.tsv,
                            settings=settings_from(args, VariantSettings), show_progress=progress(args))
    unscored = {k: v for k, v in counts.items() if k not in ("records", "alleles_scored") and v}
    print(f"{args.out}: {counts['records']} records, {counts['alleles_scored']} alleles scored"
          + "".join(f", {v} {k.replace('_', ' ')}" for k, v in unscored.items()))

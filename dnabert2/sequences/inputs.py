"""Sequences given to a model, streamed with their ids from one of three sources: a CSV (a `sequence`
column, ids from an `id` or `name` column or the row number), a FASTA (record names), or BED regions
of a genome (the name column, else contig:start-end(strand); `-` regions reverse-complemented)."""

import csv
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from Bio.Seq import reverse_complement

from ..errors import UserError, first_names
from .fasta import Fasta, check_file, check_nucleotides, open_text, read_records, reading_text

log = logging.getLogger(__name__)

SOURCES = ("csv", "fasta", "bed")


ID_COLUMNS = ("id", "name")  # a CSV's columns naming its sequences, the first filled one taken


def is_bed_header(line: str) -> bool:
    """A line of a BED file that holds no interval: a comment, or UCSC's track and browser lines (by
    their first word: a contig may be named track1)."""
    return line.startswith("#") or line.split(None, 1)[:1] in (["track"], ["browser"])


def check_interval(path, number: int, contig: str, start: int, end: int) -> None:
    """Refuse a BED line's interval that holds no base or starts before its contig."""
    if not 0 <= start < end:
        raise UserError(f"{path}: line {number}: {contig}:{start}-{end} is empty or starts below 0; a region needs "
                        "0 <= start < end")


def read_bed_intervals(path, regions: bool = False) -> Iterator[tuple[str, int, int, str | None, str]]:
    """(contig, start, end, name or None, strand) of each line of a BED file (plain, gzip or bgzip);
    strand "." when not given. For `regions`, where only the first three columns are read (as by
    bedtools merge), column 6 is not checked, and a zero-length interval (UCSC's insertion, start ==
    end) holds no base and is skipped with a warning."""
    empty = 0
    with open_text(path) as handle, reading_text(path, "BED"):
        for number, line in enumerate(handle, 1):
            if not line.strip() or is_bed_header(line):
                continue
            fields = line.rstrip("\n").split("\t")
            try:
                contig, start, end = fields[0], int(fields[1]), int(fields[2])
            except (IndexError, ValueError):
                spaced = len(fields) < 3 and len(line.split()) >= 3
                raise UserError(f"{path}: line {number} is not BED (contig, start, end"
                                f"{', separated by tabs, not spaces' if spaced else ''})") from None
            name = fields[3] if len(fields) > 3 and fields[3] not in ("", ".") else None
            strand = fields[5] if len(fields) > 5 and not regions else "."
            if strand not in ("+", "-", "."):
                raise UserError(f"{path}: line {number}: strand {strand!r} is not +, - or .")
            if regions and 0 <= start == end:
                empty += 1
                continue
            check_interval(path, number, contig, start, end)
            yield contig, start, end, name, strand
    if empty:
        log.warning("%s: %d zero-length interval(s) (start == end) hold no base, skipped", path, empty)


def read_bed_regions(path) -> list[tuple[str, int, int]]:
    """(contig, start, end) from the first three columns of a BED file (see read_bed_intervals); one of
    none (empty, or headers alone) is an error, as what is asked of it would be done nowhere."""
    regions = [(contig, start, end) for contig, start, end, _, _ in read_bed_intervals(path, regions=True)]
    if not regions:
        raise UserError(f"{path}: no regions")
    return regions


def requested_regions(lengths: dict[str, int], lacking, regions=None, contigs=None) -> list[tuple[str, int, int]]:
    """Regions asked for, in genome order, checked against the contig lengths: a BED file's, the named
    contigs, or every contig. `lacking(contig)` names the input a contig is refused for."""
    wanted = read_bed_regions(regions) if regions is not None else [(c, 0, lengths.get(c, 0)) for c in (contigs or lengths)]
    given = f" (from {regions})" if regions else ""
    for contig, start, end in wanted:
        if contig not in lengths:
            raise UserError(f"{lacking(contig)}: unknown contig {contig!r}{given} "
                            f"(contigs: {first_names(list(lengths), 10)})")
        if not 0 <= start < end <= lengths[contig]:
            raise UserError(f"{lacking(contig)}: region {contig}:{start}-{end}{given} is outside the contig or empty "
                            f"(length {lengths[contig]})")
    return merge_regions(wanted, {c: i for i, c in enumerate(lengths)})


def merge_regions(regions, order: dict[str, int]) -> list[tuple[str, int, int]]:
    """Regions sorted in genome order, overlapping or touching ones merged."""
    merged = []
    for contig, start, end in sorted(regions, key=lambda r: (order[r[0]], r[1], r[2])):
        if merged and merged[-1][0] == contig and start <= merged[-1][2]:
            merged[-1] = (contig, merged[-1][1], max(end, merged[-1][2]))
        else:
            merged.append((contig, start, end))
    return merged


class RegionIndex:
    """Which positions fall inside a set of regions (any order, overlaps allowed)."""

    def __init__(self, regions):
        order = {c: i for i, c in enumerate(dict.fromkeys(c for c, _, _ in regions))}
        self.spans: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for contig, start, end in merge_regions(regions, order):
            starts, ends = self.spans.setdefault(contig, ([], []))
            starts.append(start)
            ends.append(end)
        self.spans = {c: (np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)) for c, (a, b) in self.spans.items()}

    def holds(self, contig: str, positions: np.ndarray) -> np.ndarray:
        """A mask of the (0-based) positions on `contig` inside a region; negative ones never are."""
        positions = np.asarray(positions, dtype=np.int64)
        if contig not in self.spans:
            return np.zeros(positions.shape, dtype=bool)
        starts, ends = self.spans[contig]
        i = np.searchsorted(starts, positions, side="right") - 1
        return (i >= 0) & (positions >= 0) & (positions < ends[np.maximum(i, 0)])

    def overlaps(self, contig: str, start: int, end: int) -> bool:
        """Whether start..end-1 shares a base with a region."""
        if contig not in self.spans:
            return False
        starts, ends = self.spans[contig]
        i = int(np.searchsorted(starts, end, side="left")) - 1  # the last region starting before `end`
        return i >= 0 and int(ends[i]) > start


def read_sequences(csv_file=None, fasta=None, bed=None, genome=None, flank: int = 0) -> Iterator[tuple[str, str]]:
    """(id, upper-case sequence, U read as T) from exactly one source, in input order, without
    holding them all. The choice of source is checked now, the files as they are read. With a flank,
    each sequence comes with that many bases of context either side: a BED region's from the genome
    (N past a contig's end, as a scan reads it), N around a CSV's or a FASTA's sequences."""
    check_sources(csv_file, fasta, bed, genome)
    return _read(csv_file, fasta, bed, genome, flank)


def check_sources(csv_file=None, fasta=None, bed=None, genome=None) -> None:
    """Raise a UserError unless exactly one source is given, and its files are there."""
    given = [name for name, value in zip(SOURCES, (csv_file, fasta, bed)) if value is not None]
    if len(given) != 1:
        raise UserError("give the sequences one way: --csv, --fasta, or --bed with --genome")
    if bed is not None and genome is None:
        raise UserError("--bed regions are read from a --genome; give both")
    if genome is not None and bed is None:
        raise UserError("--genome is read only for --bed regions; sequences from --csv or --fasta need none")
    for path in (csv_file, fasta, bed, genome):
        if path is not None:
            check_file(path)


def in_blocks(records, sequences: int, bases: int):
    """Lists of at most `sequences` records holding at most `bases` bases (a longer record alone), so
    that what a block costs is bounded by its bases as well as by its count."""
    block, size = [], 0
    for record in records:
        if block and (len(block) == sequences or size + len(record[1]) > bases):
            yield block
            block, size = [], 0
        block.append(record)
        size += len(record[1])
    if block:
        yield block


def _read(csv_file, fasta, bed, genome, flank: int) -> Iterator[tuple[str, str]]:
    count = 0
    for name, sequence in _records(csv_file, fasta, bed, genome, flank):
        count += 1
        yield name, sequence.replace("U", "T")  # RNA given to a model of DNA: its bases as DNA
    if count == 0:
        raise UserError(f"{csv_file or bed}: no sequences in it")


def _records(csv_file, fasta, bed, genome, flank: int) -> Iterator[tuple[str, str]]:
    padding = "N" * flank
    if csv_file is not None:
        for name, sequence in _csv_sequences(Path(csv_file)):
            yield name, padding + sequence + padding
    elif fasta is not None:
        for name, sequence in read_records(fasta, distinct=False):  # ids, as a CSV's may repeat
            if not sequence:
                raise UserError(f"{fasta}: record {name!r} has no sequence")
            yield name, padding + sequence.upper() + padding
    else:
        with Fasta(genome) as reference:
            for contig, start, end, name, strand in read_bed_intervals(bed):
                try:  # the region itself must lie on the contig
                    reference.check_region(contig, start, end)
                except UserError as error:  # named by the file it came from too, to be found in it
                    raise UserError(f"{bed}: {error}") from None
                sequence = reference.fetch_padded(contig, start - flank, end + flank)
                yield (name or f"{contig}:{start}-{end}({strand})",
                       reverse_complement(sequence) if strand == "-" else sequence)


def check_header(path, columns, read) -> None:
    """A column read (of `read`) named twice is refused: pandas reads the first of them, csv's
    DictReader the last, so two commands would read different sequences or labels from one file."""
    twice = next((column for i, column in enumerate(columns) if column in read and column in columns[:i]), None)
    if twice is not None:
        raise UserError(f"{path}: the header names column {twice!r} twice; name each column once")


def _csv_sequences(path: Path) -> Iterator[tuple[str, str]]:
    with open_text(path, newline="") as handle, reading_text(path, "CSV"):
        rows = csv.DictReader(handle)
        if not rows.fieldnames:
            raise UserError(f"{path}: empty file, no header and no sequences")
        check_header(path, rows.fieldnames, ("sequence", *ID_COLUMNS))
        if "sequence" not in rows.fieldnames:
            raise UserError(f"{path}: no 'sequence' column (found: {', '.join(rows.fieldnames)})")
        keys = [column for column in ID_COLUMNS if column in rows.fieldnames]
        for number, row in enumerate(rows, 1):
            # csv fills a short row's last columns with None, and files a long one's extras under None: a
            # file cut off before a row's last column would be scored as the fragment it holds. Empty
            # extras (a trailing comma) are a spreadsheet's.
            if None in row.values():
                raise UserError(f"{path}: line {rows.line_num} has fewer fields than the header (a file cut short?)")
            if any(extra.strip() for extra in row.get(None, ())):
                raise UserError(f"{path}: line {rows.line_num} has more fields than the header (a field holding a "
                                "comma, unquoted?)")
            # A blank id (spaces alone too): its name, else its row number.
            name = next((row[key] for key in keys if (row[key] or "").strip()), None) or str(number)
            sequence = (row["sequence"] or "").upper()
            check_nucleotides(path, name, sequence)
            if not sequence:
                named = "" if name == str(number) else f" ({name})"  # an unnamed row is named by its number
                raise UserError(f"{path}: line {rows.line_num}{named} has an empty sequence")
            yield name, sequence

"""Fixed-length windows over contigs or regions, on one or both strands, around runs of N."""

import csv
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from Bio.Seq import reverse_complement

from ..errors import UserError, first_names
from ..options import add_settings, output_file, settings_from
from ..outputs import atomic_text, check_outputs, plain_suffix
from ..settings import WindowsSettings
from .fasta import Fasta
from .inputs import merge_regions, requested_regions

log = logging.getLogger(__name__)

# An IUPAC code other than A, C, G and T (R, Y, ...) is as unknown as N, as too_many_n counts it.
_KNOWN, _UNKNOWN = re.compile(r"[ACGT]+"), re.compile(r"[^ACGT]")


@dataclass(frozen=True)
class Window:
    contig: str
    start: int  # 0-based, half-open, on the forward strand whatever the window's strand
    end: int
    strand: str
    sequence: str  # upper-cased, reverse-complemented on the minus strand

    @property
    def name(self) -> str:
        return f"{self.contig}:{self.start}-{self.end}({self.strand})"


def starts(length: int, size: int, stride: int) -> list[int]:
    """Window starts tiling [0, length) with the given stride, plus one window flush with the end
    so the tail is covered too. Empty if the stretch is shorter than a window."""
    if length < size:
        return []
    positions = list(range(0, length - size + 1, stride))
    if positions[-1] != length - size:
        positions.append(length - size)
    return positions


def segments(sequence: str, on_n: str) -> list[tuple[int, int]]:
    """The stretches to tile: with 'split', the runs of A, C, G and T between runs of N (or other
    IUPAC codes); with 'skip' or 'keep', the whole sequence (windows holding N are then dropped or kept)."""
    if on_n == "split":
        return [m.span() for m in _KNOWN.finditer(sequence)]
    return [(0, len(sequence))]


def windows(sequence: str, contig: str, size: int, stride: int, *, offset: int = 0,
            strands: str = "both", on_n: str = "split", min_size: int | None = None) -> Iterator[Window]:
    """Windows of `size` bp every `stride` bp over an upper-case `sequence` that starts at `offset`
    on `contig`. on_n: 'split' tiles each N-free stretch separately, 'skip' tiles the whole sequence
    and drops windows with an N, 'keep' keeps them. Stretches shorter than `size` but at least
    `min_size` give one shorter window."""
    if size < 1 or stride < 1:
        raise UserError(f"window length and stride must be positive (got {size} and {stride})")
    if on_n not in ("split", "skip", "keep"):
        raise UserError(f"on_n must be split, skip or keep, not {on_n!r}")
    wanted = {"both": "+-", "+": "+", "-": "-"}.get(strands)
    if wanted is None:
        raise UserError(f"strands must be both, + or -, not {strands!r}")
    for seg_start, seg_end in segments(sequence, on_n):
        length = seg_end - seg_start
        spans = [(s, s + size) for s in starts(length, size, stride)]
        if not spans and min_size is not None and length >= min_size:
            spans = [(0, length)]
        for s, e in spans:
            piece = sequence[seg_start + s : seg_start + e]
            if on_n == "skip" and _UNKNOWN.search(piece):
                continue
            for strand in wanted:
                yield Window(
                    contig,
                    offset + seg_start + s,
                    offset + seg_start + e,
                    strand,
                    piece if strand == "+" else reverse_complement(piece),
                )


def genome_windows(fasta: Fasta, size: int, stride: int, *, regions: Iterable[tuple[str, int, int]] | None = None,
                   contigs: Iterable[str] | None = None, **options) -> Iterator[Window]:
    """Windows over a genome in its order (contigs as the FASTA has them, then by start): every contig,
    the named `contigs`, or `regions` (contig, start, end; overlapping ones merged, so that no window
    comes twice; touching ones too). One contig (or region) is in memory at a time."""
    if regions is None:
        regions = [(c, 0, None) for c in (contigs if contigs is not None else fasta.lengths)]
    regions = [(contig, start, fasta.check_region(contig, start, end)) for contig, start, end in regions]
    for contig, start, end in merge_regions(regions, {c: i for i, c in enumerate(fasta.lengths)}):
        yield from windows(fasta.fetch(contig, start, end), contig, size, stride, offset=start, **options)


def add_arguments(parser) -> None:
    parser.description = ("Tile contigs or regions with windows of a fixed length and stride, on both strands "
                          "(minus-strand windows reverse-complemented), upper-cased. Where the stride leaves a "
                          "contig's last bases out, one more window ends at its end: with a stride no longer than "
                          "the window, every base of a contig a window long or more is in one; shorter contigs and "
                          "regions (and, with --on-n split, stretches between Ns) give none unless --min-length "
                          "lets them. Windows are named contig:start-end(strand), 0-based half-open as bedtools "
                          "getfasta names them; CSV and BED starts are 0-based too.")
    parser.add_argument("--genome", required=True, type=Path, metavar="FASTA", help="genome FASTA or GenBank")
    parser.add_argument("--out", required=True, type=output_file, help="output file (.fa/.fasta, .csv or .bed; bgzip-compressed when named .gz)")
    add_settings(parser, WindowsSettings)


def run(args) -> None:
    s = settings_from(args, WindowsSettings)
    if s.min_length is not None and s.min_length >= s.window:  # no stretch shorter than a window is that long
        raise UserError(f"--min-length {s.min_length}: the shortest stretch shorter than a window (--window "
                        f"{s.window}) to emit; give less than {s.window}")
    check_outputs([args.out], [args.genome, s.regions])
    fmt = s.format or {".csv": "csv", ".bed": "bed"}.get(plain_suffix(args.out), "fasta")
    count = 0
    with Fasta(args.genome) as fasta, atomic_text(args.out) as out:
        regions = requested_regions(fasta.lengths, lambda _: args.genome, s.regions, s.contigs)
        table = csv.writer(out, lineterminator="\n")
        if fmt == "csv":
            table.writerow(["contig", "start", "end", "strand", "sequence"])
        for w in genome_windows(fasta, s.window, s.stride, regions=regions, strands=s.strands, on_n=s.on_n,
                                min_size=s.min_length):
            if fmt == "csv":
                table.writerow([w.contig, w.start, w.end, w.strand, w.sequence])
            elif fmt == "bed":
                out.write(f"{w.contig}\t{w.start}\t{w.end}\t{w.name}\t0\t{w.strand}\n")
            else:
                out.write(f">{w.name}\n{w.sequence}\n")
            count += 1
        if not count:  # inside the output's context: no empty file is left behind
            raise UserError(f"{args.genome}: no {s.window} bp window fits the regions asked for (the longest is "
                            f"{max(end - start for _, start, end in regions):,} bp), or every one holds N (--on-n)")
    # Contigs and regions left out whole are said, unlike stretches between Ns, which --on-n split cuts by design.
    least = s.window if s.min_length is None else s.min_length
    short = [f"{c}:{a}-{b}" for c, a, b in regions if b - a < least]
    if short:
        log.warning("%d contig(s) or region(s) (overlapping or touching ones merged) shorter than %d bp (%s) have no "
                    "window: %s", len(short), least, "--window" if s.min_length is None else "--min-length",
                    first_names(short))
    log.info("wrote %d windows to %s", count, args.out)

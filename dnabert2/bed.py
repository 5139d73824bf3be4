"""BED output: 0-based half-open, sorted by contig order then start, written atomically."""

import csv
from collections.abc import Iterable, Sequence

from .outputs import atomic_output

Row = tuple  # (contig, start, end[, name, score, strand, ...])


def write_bed(path, rows: Iterable[Row], contig_order: Sequence[str]) -> int:
    """Write rows sorted by (contig order, start, end); returns the number written."""
    order = {name: i for i, name in enumerate(contig_order)}
    ordered = sorted(rows, key=lambda row: (order[row[0]], row[1], row[2], row[3:]))
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as handle:
        csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(ordered)
    return len(ordered)


def write_junctions(path, bam_path, reference=None, *, min_mapq: int = 0, min_reads: int = 1) -> int:
    """The junctions (CIGAR N) the BAM's reads show, as BED6; returns the number written. BED scores
    stop at 1000, so the exact read count goes into the name (reads=N)."""
    from .sequences import Fasta, check_reference, junctions, open_alignments

    fasta = Fasta(reference) if reference else None
    try:
        with open_alignments(bam_path, reference) as bam:
            if fasta is not None:
                check_reference(bam, fasta)
            found = junctions(bam, fasta, min_mapq=min_mapq)
            order = list(bam.references)
    finally:
        if fasta is not None:
            fasta.close()
    rows = [(j.contig, j.start, j.end, f"reads={j.reads}", min(j.reads, 1000), j.strand)
            for j in found if j.reads >= min_reads]
    return write_bed(path, rows, order)

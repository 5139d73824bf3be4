"""BED output: 0-based half-open, sorted by contig order then start, written atomically; and the
commands that write annotated sites and observed junctions as BED."""

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import UserError
from .options import add_settings, output_file, settings_from
from .outputs import check_outputs, write_bed_rows
from .settings import MIN_INTRON, JunctionsSettings, SitesSettings
from .tasks.registry import no_introns

log = logging.getLogger(__name__)

Row = tuple  # (contig, start, end[, name, score, strand, ...])


BED_OUT = "output BED (bgzip-compressed, with a tabix index, when named .gz)"  # sites and junctions alike


def write_bed(path, rows: Iterable[Row], contig_order: Sequence[str]) -> int:
    """Write rows sorted by (contig order, start, end), with a tabix index beside them when named .gz
    (write_bed_rows); returns the number written."""
    order = {name: i for i, name in enumerate(contig_order)}
    return write_bed_rows(path, sorted(rows, key=lambda row: (order[row[0]], row[1], row[2], row[3:])))


def bed_header(path) -> tuple[list[str], str | None]:
    """The lines before a BED or bedGraph file's first row (track, browser, # and blank lines), and
    that row."""
    from .sequences.fasta import open_text, reading_text
    from .sequences.inputs import is_bed_header

    header = []
    with reading_text(path, "BED or bedGraph"), open_text(path) as handle:
        for line in handle:
            if line.strip() and not is_bed_header(line):
                return header, line
            header.append(line)
    return header, None


def write_junctions(path, bam_path, reference=None, *, min_mapq: int = 0, min_reads: int = 1, contigs=None,
                    regions=None) -> int:
    """The junctions (CIGAR N) the BAM's reads show, as BED6; returns the number written. BED scores
    stop at 1000, so the exact read count (of fragments: see junctions) goes into the name (reads=N).
    contigs: those contigs' only; regions: (contig, start, end), checked already: those overlapping
    one of them only."""
    from .sequences import Fasta, RegionIndex, check_reference, junctions, open_alignments

    keep = None
    if regions is not None:
        contigs, keep = list(dict.fromkeys(c for c, _, _ in regions)), RegionIndex(regions).overlaps
    fasta = Fasta(reference) if reference else None
    try:
        with open_alignments(bam_path, reference) as bam:
            shared = check_reference(bam, fasta.lengths, fasta.path) if fasta is not None else None
            for contig in contigs or ():
                if shared is not None and contig in bam.references and contig not in shared:
                    raise UserError(f"{bam_path}: contig {contig!r} is not in the reference {fasta.path}")
            found = [j for contig in dict.fromkeys(contigs or shared or [None])  # an unknown contig is refused there
                     for j in junctions(bam, fasta, contig=contig, min_mapq=min_mapq)]
            order = list(fasta.lengths if fasta is not None else bam.references)
    finally:
        if fasta is not None:
            fasta.close()
    # A junction's reads count together, whichever strand their tags give them: a row per strand.
    reads = Counter()
    for j in found:
        reads[j.contig, j.start, j.end] += j.reads
    rows = [(j.contig, j.start, j.end, f"reads={j.reads}", min(j.reads, 1000), j.strand) for j in found
            if reads[j.contig, j.start, j.end] >= min_reads and (keep is None or keep(j.contig, j.start, j.end))]
    return write_bed(path, rows, order)


def add_sites_arguments(parser) -> None:
    parser.description = ("Read a GFF3, GTF or GenBank annotation and write, strand-aware, one BED6 line per TSS "
                          "(first transcribed base), TTS (last transcribed base), splice site (donor: the intron's "
                          "first base; acceptor: its last), intron or gene span, of the transcripts kept (whole ones, of --biotype and "
                          "--tag): a gene is the span of its transcripts, so a pseudogene without one is none. "
                          "Processed RNAs (tRNA, rRNA, snoRNA, miRNA, circRNA) and pseudogenes give no TSS or TTS, "
                          "their ends being no transcript's; in GenBank, a CDS inside an mRNA naming no gene is that "
                          "mRNA's (a phage's operon). Named tss, tts, donor, acceptor, intron or by gene, score 0, "
                          "sorted in the genome's contig order then by start (bedtools sort -faidx).")
    parser.add_argument("--annotation", required=True, type=Path, metavar="GTF|GFF3|GBK",
                        help="gene annotation (plain or gzip)")
    parser.add_argument("--genome", required=True, type=Path, metavar="FASTA",
                        help="the genome it annotates (contigs are checked)")
    parser.add_argument("--out", required=True, type=output_file, help=BED_OUT)
    add_settings(parser, SitesSettings)


def run_sites(args) -> None:
    from .sequences import Fasta, read_annotation

    s = settings_from(args, SitesSettings)
    kind = s.kind
    if kind not in ("splice", "introns") and s.min_intron is not None:
        raise no_introns(f"--kind {kind}")
    check_outputs([args.out], [args.annotation, args.genome])
    annotation = read_annotation(args.annotation, s.min_intron or MIN_INTRON, s.biotypes, s.tags)
    with Fasta(args.genome) as fasta:
        annotation.keep_genome_contigs(fasta.lengths, str(fasta.path))
        order = list(fasta.lengths)
    if kind == "introns":
        rows = [(i.contig, i.start, i.end, "intron", 0, i.strand) for i in annotation.introns()]
    elif kind == "genes":
        rows = [(g.contig, g.start, g.end, g.id, 0, g.strand) for g in annotation.genes()]
    else:
        sites = annotation.sites({"donor", "acceptor"} if kind == "splice" else {kind})
        rows = [(s.contig, s.position, s.position + 1, s.kind, 0, s.strand) for s in sites]
    n = write_bed(args.out, rows, order)
    log.info("wrote %d %s to %s", n, kind, args.out)
    if not n:  # a valid answer (a bacterium has no introns), but one a pipeline run with -q should hear of
        log.warning("%s holds no %s on the genome's contigs: %s is empty", args.annotation,
                    {"splice": "splice sites", "tss": "TSSs", "tts": "TTSs"}.get(kind, kind), args.out)


def add_junctions_arguments(parser) -> None:
    parser.description = ("Count introns (CIGAR N between aligned bases; adjacent Ns are one) in primary alignments "
                          "that are neither duplicates nor QC failures, a fragment once, and write them as BED6 named "
                          "reads=N (score: N, capped at 1000), in the reference's contig order (else the BAM header's); "
                          "strand from XS/ts tags (a read without them takes the strand its intron's tagged reads "
                          "agree on), else the reference's motif.")
    parser.add_argument("--bam", required=True, type=Path, help="indexed BAM or CRAM")
    parser.add_argument("--reference", type=Path, metavar="FASTA",
                        help="reference FASTA (needed for CRAM; gives strands by motif)")
    parser.add_argument("--out", required=True, type=output_file, help=BED_OUT)
    add_settings(parser, JunctionsSettings)


def run_junctions(args) -> None:
    from .sequences import open_alignments, requested_regions

    s = settings_from(args, JunctionsSettings)
    check_outputs([args.out], [args.bam, args.reference, s.regions])
    regions = None
    if s.regions is not None:  # checked as a scan checks them: on the BAM's contigs, inside them
        with open_alignments(args.bam, args.reference) as bam:
            lengths = dict(zip(bam.references, bam.lengths))
        regions = requested_regions(lengths, lambda contig: str(args.bam), regions=s.regions)
    n = write_junctions(args.out, args.bam, args.reference, min_mapq=s.min_mapq, min_reads=s.min_reads,
                        contigs=s.contigs, regions=regions)
    if not n:  # unspliced reads (DNA, or an aligner run without splicing), or filters that keep none
        log.warning("%s: no intron (CIGAR N) in the primary alignments kept (--min-mapq %d, --min-reads %d%s): %s is "
                    "empty", args.bam, s.min_mapq, s.min_reads, f", in {s.regions}" if s.regions else "", args.out)
    log.info("wrote %d junctions to %s", n, args.out)

"""Aligned reads (BAM/CRAM through pysam): primary alignments with their reference coordinates, and
splice junctions observed as CIGAR N operations."""

import contextlib
import heapq
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pysam

from ..errors import UserError, first_names, naming_hint
from .fasta import Fasta, check_file, compression, sniff_format

log = logging.getLogger(__name__)

_REF_SKIP = 3  # CIGAR N
_CONSUMES_REFERENCE = {0, 2, 3, 7, 8}  # M D N = X
_ALIGNED = {0, 7, 8}  # M = X
_MOTIF_STRAND = {"GTAG": "+", "GCAG": "+", "ATAC": "+", "CTAC": "-", "CTGC": "-", "GTAT": "-"}


@dataclass(frozen=True, order=True)
class Junction:
    """An intron seen in reads: 0-based half-open reference interval, strand ('.' if unknown)."""

    contig: str
    start: int
    end: int
    strand: str
    reads: int


def open_alignments(path, reference=None) -> pysam.AlignmentFile:
    """Open an indexed BAM or CRAM; CRAM needs its reference FASTA."""
    path = check_file(path)
    try:
        bam = pysam.AlignmentFile(str(path), reference_filename=str(reference) if reference else None)
    except (OSError, ValueError) as error:
        # pysam's own words for a header without @SQ lines name an argument of its API; htslib reads
        # any text (a FASTA given for the BAM) as SAM without a header.
        why = error
        if "check_sq" in str(error):
            kind = _sequence_format(path)
            why = f"a {kind} file" if kind else "its header has no @SQ lines: reads aligned to no reference"
        raise UserError(f"{path}: not a readable BAM/CRAM ({why})") from None
    if bam.is_sam:  # htslib reads regions of BAM and CRAM only
        bam.close()
        raise UserError(f"{path}: SAM, which cannot be indexed: sort it into a BAM and index that "
                        f"(samtools sort -o reads.bam {path} && samtools index reads.bam)")
    if not bam.has_index():
        order = bam.header.to_dict().get("HD", {}).get("SO")
        bam.close()
        if order not in (None, "coordinate", "unknown"):  # samtools index would refuse it too
            raise UserError(f"{path}: not sorted by position (its header says SO:{order}), so it has no index "
                            f"(samtools sort -o sorted.bam {path} && samtools index sorted.bam)")
        found = index_files(path)
        if found:  # htslib says the same of a damaged or empty index as of none
            raise UserError(f"{path}: its index {found[0]} cannot be read (damaged, or cut short): rebuild it "
                            f"(samtools index {path})")
        raise UserError(f"{path}: alignment file has no index (run `samtools index {path}`)")
    # htslib cannot decode a CRAM without its reference, or from a plain-gzip one, and says so only
    # on stderr: every read would silently go missing.
    if bam.is_cram and (reference is None or compression(reference) == "gzip"):
        bam.close()
        raise UserError(f"{path}: a CRAM needs its reference FASTA, plain or bgzip: "
                        + (f"{reference} is plain gzip (zcat it | bgzip)" if reference else "give --reference"))
    return bam


def _sequence_format(path) -> str | None:
    """'FASTA' or 'GenBank' for a file of sequences, else None."""
    try:
        return {"fasta": "FASTA", "genbank": "GenBank"}[sniff_format(path)]
    except UserError:
        return None


# (BAM, contigs left out, reference) warned of: a scan checks them several times.
_WARNED: set[tuple[str, tuple[str, ...], int]] = set()


def check_reference(bam: pysam.AlignmentFile, lengths: dict[str, int], reference) -> list[str]:
    """The BAM's contigs that the reference (its contig `lengths`) has. Those it lacks (the decoys and
    alternative contigs of a fuller assembly than the FASTA's) are left out with a warning, as
    bedtools skips them; a UserError if it has none of them, or gives one another length (another
    assembly)."""
    name = bam.filename.decode()
    missing = [contig for contig in bam.references if contig not in lengths]
    if len(missing) == len(bam.references):
        raise UserError(f"{name}: none of its contigs is in the reference {reference} ({first_names(missing)} are not)"
                        f"{naming_hint(missing, lengths)}")
    for contig, length in zip(bam.references, bam.lengths):
        if contig in lengths and lengths[contig] != length:
            raise UserError(f"{name}: contig {contig!r} is {length} bp in the BAM header but {lengths[contig]} bp in "
                            f"the reference {reference}")
    seen = (name, tuple(missing), hash(tuple(lengths.items()))) if missing else None  # however the reference is named
    if seen and seen not in _WARNED:
        _WARNED.add(seen)
        log.warning("%s: %d contig(s) not in the reference %s, their alignments left out: %s%s", name, len(missing),
                    reference, first_names(missing), naming_hint(missing, lengths))
    return [contig for contig in bam.references if contig in lengths]


def aligned_reads(bam: pysam.AlignmentFile, contig=None, start=None, end=None, min_mapq: int = 0,
                  bases: bool = False, genome: Fasta | None = None) -> Iterator[pysam.AlignedSegment]:
    """Primary, mapped alignments in reference order, neither failing QC nor marked duplicate (what
    samtools depth leaves out by default, and supplementary parts). Their reference coordinates:
    `read.get_blocks()` (aligned blocks, split at introns) and `read.get_aligned_pairs()`. Coverage and
    introns need only the CIGAR; with `bases`, an alignment stored without its read's bases (SEQ '*')
    is an error, and bases stored as '=' (those matching the reference, as samtools calmd -e writes
    them) are read from the `genome`, an error without one."""
    if contig is not None and contig not in bam.references:
        raise UserError(f"{bam.filename.decode()}: unknown contig {contig!r}")
    # Contig by contig: a whole-file fetch stops at a damaged block without a word, where one
    # contig's fetch raises.
    contigs = bam.references if contig is None else [contig]
    try:
        for read in (read for name in contigs for read in bam.fetch(name, start, end)):
            if read.is_unmapped or read.is_secondary or read.is_supplementary or read.is_qcfail or read.is_duplicate:
                continue
            if read.mapping_quality < min_mapq or read.cigartuples is None:  # CIGAR '*' aligns no base
                continue
            if read.reference_end > bam.lengths[read.reference_id]:  # htslib reads it, its introns and bases too
                raise UserError(f"{bam.filename.decode()}: alignment {read.query_name!r} ends at "
                                f"{read.reference_name}:{read.reference_end}, past the contig's "
                                f"{bam.lengths[read.reference_id]} bp (its @SQ LN)")
            if bases and not read.query_sequence:
                raise UserError(f"{bam.filename.decode()}: primary alignment {read.query_name!r} holds no read bases "
                                "(SEQ '*'); reads mode scans them: scan the reference where reads cover with --covered "
                                "DEPTH")
            if bases and "=" in read.query_sequence:
                _restore_matches(read, genome, bam.filename.decode())
            yield read
    except OSError as error:
        name, cram = bam.filename.decode(), bam.is_cram
        with contextlib.suppress(OSError):
            bam.close()  # after a failed read htslib's close fails too, which would hide why
        against = ", or a CRAM read with another reference than its own" if cram else ""
        stale = "its index is older than it (index it again: samtools index), or " if _index_older(name) else ""
        raise UserError(f"{name}: reading failed ({error}): {stale}a truncated or corrupt file{against}? (samtools "
                        "quickcheck, samtools view)") from None


def index_names(path) -> list[Path]:
    """Where htslib looks for an alignment file's index (in its order): beside it, named after it."""
    path = Path(path)
    suffixes = (".bai", ".csi", ".crai")
    return [*(Path(f"{path}{s}") for s in suffixes), *(path.with_suffix(s) for s in suffixes)]


def index_files(path) -> list[Path]:
    """The index files beside an alignment file, in the order htslib takes them."""
    return [i for i in index_names(path) if i.exists()]


def _index_older(name: str) -> bool:
    """Whether the index beside an alignment file is older than the file (written before it was
    rewritten: it points into other blocks)."""
    return any(i.stat().st_mtime < Path(name).stat().st_mtime for i in index_files(name))


def _restore_matches(read: pysam.AlignedSegment, genome: Fasta | None, name: str) -> None:
    """Put the reference's bases where the read stores '=' for them."""
    if genome is None:
        raise UserError(f"{name}: alignment {read.query_name!r} stores the bases that match the reference as '=' "
                        "(samtools calmd -e): give --reference to read them")
    span = genome.fetch(read.reference_name, read.reference_start, read.reference_end)
    bases = list(read.query_sequence)
    for query, position in read.get_aligned_pairs(matches_only=True):
        if bases[query] == "=":
            bases[query] = span[position - read.reference_start]
    read.query_sequence = "".join(bases)  # its qualities, which reads mode does not read, go with it


def read_introns(read: pysam.AlignedSegment) -> list[tuple[int, int]]:
    """The read's CIGAR N operations as 0-based half-open reference intervals. Only those with an
    aligned base on each side: an N at an end of the alignment (10M100N, 5S100N10M) shows no splice.
    Adjacent ones are one intron, as CRAM stores them (htslib writes 50N50N as 100N)."""
    cigar = read.cigartuples
    aligned = [i for i, (op, length) in enumerate(cigar) if op in _ALIGNED and length]
    introns, position, previous = [], read.reference_start, None
    if not aligned:
        return introns
    for i, (op, length) in enumerate(cigar):
        if op == _REF_SKIP and length and aligned[0] < i < aligned[-1]:  # 0N skips no base: no intron
            if previous == _REF_SKIP:
                introns[-1] = (introns[-1][0], position + length)
            else:
                introns.append((position, position + length))
        if op in _CONSUMES_REFERENCE:
            position += length
        if length:
            previous = op
    return introns


def mate_start(read: pysam.AlignedSegment) -> int | None:
    """Where the read's mate starts, when it is aligned on the read's contig (else None: no mate can
    show what the read shows)."""
    if not read.is_paired or read.mate_is_unmapped or read.next_reference_id != read.reference_id:
        return None
    return read.next_reference_start


class Fragments:
    """Counts what reads show (an intron, a site) once per fragment, as STAR's SJ.out.tab counts a
    junction whose mates both cross it. A mate shows a thing at a position only if it starts at or
    before it, so what one mate showed is kept until the reads, fed in reference order, start past
    that position (or reach the next contig)."""

    def __init__(self):
        self.contig, self.shown, self.expiry = None, set(), []  # expiry: heap of (position, key)

    def reach(self, contig, start: int) -> None:
        """Reads from here on start at or after `start` on `contig`."""
        if contig != self.contig:
            self.contig, self.shown, self.expiry = contig, set(), []
        while self.expiry and self.expiry[0][0] < start:
            self.shown.discard(heapq.heappop(self.expiry)[1])

    def first(self, name: str, mate: int | None, position: int, what) -> bool:
        """Whether read `name` (its mate starting at `mate`, None without one) showing `what` at
        `position` is the first of its fragment to show it."""
        if mate is None:
            return True
        key = (name, position, what)
        if key in self.shown:
            self.shown.discard(key)
            return False
        if mate <= position:
            self.shown.add(key)
            heapq.heappush(self.expiry, (position, key))
        return True


def _fragment_introns(reads) -> Iterator[tuple[pysam.AlignedSegment, list[tuple[int, int]]]]:
    """Each read with its introns but those its mate showed (see Fragments)."""
    fragments = Fragments()
    for read in reads:
        fragments.reach(read.reference_id, read.reference_start)
        mate = mate_start(read)
        yield read, [(start, end) for start, end in read_introns(read)
                     if fragments.first(read.query_name, mate, start, end)]


def transcript_strand(read: pysam.AlignedSegment) -> str | None:
    """The strand of the transcript a read came from, from the aligner's tags: XS (STAR, HISAT2)
    gives it directly; minimap2's ts says whether the read's own strand is the transcript's."""
    if read.has_tag("XS"):
        strand = read.get_tag("XS")
    elif read.has_tag("ts"):
        same, opposite = ("-", "+") if read.is_reverse else ("+", "-")
        strand = {"+": same, "-": opposite}.get(read.get_tag("ts"))
    else:
        return None
    return strand if strand in ("+", "-") else None  # "?" or "." (strand unknown) says no more than no tag


def junctions(bam: pysam.AlignmentFile, reference: Fasta | None = None, contig=None, min_mapq: int = 0) -> list[Junction]:
    """Splice junctions with their read support, a fragment counting once (see _fragment_introns).
    Strand comes from the aligner's tags, else from the other reads of the same intron when their tags
    agree, else (given the reference) from the intron's terminal dinucleotides, else '.'."""
    counts = Counter()
    for read, introns in _fragment_introns(aligned_reads(bam, contig, min_mapq=min_mapq)):
        strand = transcript_strand(read)
        for start, end in introns:
            counts[(read.reference_name, start, end, strand)] += 1
    tagged = {}
    for name, start, end, strand in counts:
        if strand is not None:
            tagged.setdefault((name, start, end), set()).add(strand)
    merged = Counter()
    for (name, start, end, strand), n in counts.items():
        known = tagged.get((name, start, end), set())
        if strand is None and len(known) == 1:
            strand = next(iter(known))
        elif strand is None and reference is not None:
            motif = reference.fetch(name, start, start + 2) + reference.fetch(name, end - 2, end)
            strand = _MOTIF_STRAND.get(motif)
        merged[(name, start, end, strand or ".")] += n
    order = {name: i for i, name in enumerate(bam.references)}
    return sorted(
        (Junction(c, s, e, strand, n) for (c, s, e, strand), n in merged.items()),
        key=lambda j: (order[j.contig], j.start, j.end, j.strand),
    )


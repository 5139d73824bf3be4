"""Reading genomes and what lies on them: FASTA/GenBank sequences, GFF3/GTF annotation, BAM/CRAM
alignments, and windows over them."""

from Bio.Seq import reverse_complement

from .alignments import (Fragments, Junction, aligned_reads, check_reference, junctions, mate_start, open_alignments,
                         read_introns)
from .annotation import Annotation, Gene, Intron, Site, Transcript, read_annotation
from .fasta import Fasta, check_distinct, check_distinct_contigs, read_records, too_many_n, write_indexed_fasta
from .inputs import (RegionIndex, check_sources, in_blocks, merge_regions, read_bed_intervals, read_bed_regions,
                     read_sequences, requested_regions)
from .windows import Window, genome_windows, windows

__all__ = [
    "Annotation", "Fasta", "Fragments", "Gene", "Intron", "Junction", "Site", "Transcript", "Window", "aligned_reads",
    "check_distinct", "check_distinct_contigs", "check_reference", "check_sources", "genome_windows", "junctions", "mate_start", "open_alignments", "read_annotation",
    "RegionIndex", "in_blocks", "merge_regions", "read_bed_intervals", "read_bed_regions", "read_introns", "read_records", "read_sequences", "requested_regions", "reverse_complement", "too_many_n",
    "windows", "write_indexed_fasta",
]

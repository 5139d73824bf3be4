"""Whether an annotation fits the genome it is given with: its splice sites on their dinucleotides."""

from ..errors import UserError
from ..sequences import Fasta, reverse_complement
from .registry import TaskKind

MOTIF_SITES = 20  # sites of a label, at least, before the share on its motif is judged


def check_motifs(task: TaskKind, sites: list, fasta: Fasta, annotation) -> None:
    """Refuse an annotation whose sites mostly lack their label's dinucleotide (donors GT, acceptors
    AG): ~98% of a genome's own annotation have it, a few percent of one with shifted coordinates, such as
    another assembly's with the same contig names. From that, negatives drawn at the motif would be
    told apart by the motif alone, and every figure would be of nothing."""
    for i, label in enumerate(task.sites, 1):
        if not label.motif:
            continue
        # Judged on each strand: an annotation wrong on one (its minus-strand coordinates shifted)
        # would pass on the two together.
        found, total = {"+": 0, "-": 0}, {"+": 0, "-": 0}
        for site, number in sites:
            # The motif starts motif_offset bp from the site along its strand.
            start = site.position + label.motif_offset if site.strand == "+" else site.position - label.motif_offset - 1
            if number != i or start < 0 or start + 2 > fasta.lengths[site.contig]:
                continue
            pair = fasta.fetch(site.contig, start, start + 2)
            found[site.strand] += (pair if site.strand == "+" else reverse_complement(pair)) == label.motif
            total[site.strand] += 1
        for strand in "+-":
            if total[strand] >= MOTIF_SITES and found[strand] < total[strand] / 2:
                raise UserError(f"{annotation}: {found[strand]} of its {total[strand]} {label.name} sites on the "
                                f"{strand} strand lie on {label.motif}, where a genome's own annotation puts ~98%: is "
                                "it the annotation of this assembly?")

"""The task registry: each kind of task (promoter, core-promoter, splice, tts) defined once, in one
place that `tasks`, `finetune`, `scan`, `scan-eval`, the command line and the workflow schema read.

A kind says what its labels are, where each label's site sits in its window, which annotated sites
it is built from, how negatives are drawn, and which scan-eval tolerance matches its calls. Adding a
kind means adding one entry to KINDS (and, for a new kind of site, teaching the annotation reader
to find it).
"""

from dataclasses import dataclass

from ..errors import UserError


@dataclass(frozen=True)
class Geometry:
    """A window around a single-base site, in bases upstream and downstream of it on its strand."""

    upstream: int
    downstream: int

    @property
    def length(self) -> int:
        return self.upstream + self.downstream + 1

    def span(self, position: int, strand: str) -> tuple[int, int]:
        if strand == "+":
            return position - self.upstream, position + self.downstream + 1
        return position - self.downstream, position + self.upstream + 1


@dataclass(frozen=True)
class SiteLabel:
    """One positive label of a task: the annotated site it marks and where that site sits in a window."""

    name: str  # the label in task.json, in scan calls and in scan-eval reports
    site: str  # the annotated site kind (dnabert2.sequences.Annotation.sites): tss, tts, donor, acceptor
    geometry: Geometry
    tolerance: str  # the scan-eval tolerance (a TOLERANCES key) its calls are matched with
    # A dinucleotide every site of this label has, starting `motif_offset` bp from the site;
    # negatives are then windows with the same motif in the same place.
    motif: str | None = None
    motif_offset: int = 0

    @property
    def splice(self) -> bool:
        """Whether it marks a splice site, an end of an intron (which --min-intron defines)."""
        return self.site in ("donor", "acceptor")


def no_introns(what: str) -> UserError:
    """--min-intron given where no splice site is read, which it would not change."""
    return UserError(f"--min-intron decides which gaps between exons are introns: {what} has no splice sites for it "
                     "to act on")


@dataclass(frozen=True)
class TaskKind:
    name: str
    summary: str  # one line for --help and the workflow schema
    background: str  # label 0: windows without a site
    sites: tuple[SiteLabel, ...]  # labels 1, 2, …
    negatives: tuple[str, ...] = ("genomic", "shuffled")  # choices of `tasks --negatives`, default first

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.background, *(s.name for s in self.sites))

    @property
    def window_bp(self) -> int:
        return self.sites[0].geometry.length

    @property
    def motifs(self) -> bool:
        return any(s.motif for s in self.sites)

    @property
    def splices(self) -> bool:
        """Whether its sites are splice sites, the ends of introns (which --min-intron defines)."""
        return any(s.splice for s in self.sites)

    def check_min_intron(self, given: bool) -> None:
        if given and not self.splices:
            raise no_introns(f"a {self.name} task")

    def check_negatives(self, negatives: str) -> None:
        if negatives not in self.negatives:
            raise UserError(f"{self.name} negatives must be {' or '.join(map(repr, self.negatives))}, "
                            f"not {negatives!r}")


# Annotated TSSs and TTSs are only as exact as the transcripts' ends: calls within 100 bp count.
TOLERANCES = {
    "splice": (0, "bp a called splice site may be off and still match, 0 for exact"),
    "tss": (100, "bp a called TSS may be off and still match"),
    "tts": (100, "bp a called TTS (a transcript's last base) may be off and still match"),
}

# Scan calls of one label and strand closer than this are one peak (`scan --min-distance`), or closer
# than the label's scan-eval tolerance, within which they would match the same site.
PEAK_DISTANCE = 10


def peak_distance(label: str) -> int:
    known = SITE_LABELS.get(label)
    return max(PEAK_DISTANCE, TOLERANCES[known.tolerance][0]) if known else PEAK_DISTANCE


PROMOTER = Geometry(249, 50)
CORE_PROMOTER = Geometry(34, 35)
# The boundary sits between window bases 199 and 200: a donor's intron starts at base 200 (its GT),
# an acceptor's intron ends at base 199 (its AG).
DONOR = Geometry(200, 199)
ACCEPTOR = Geometry(199, 200)

KINDS = {kind.name: kind for kind in (
    TaskKind("promoter", "300 bp, -249..+50 around TSSs", "non-promoter",
             (SiteLabel("promoter", "tss", PROMOTER, "tss"),)),
    TaskKind("core-promoter", "70 bp, -34..+35 around TSSs", "non-promoter",
             (SiteLabel("promoter", "tss", CORE_PROMOTER, "tss"),)),
    TaskKind("splice", "400 bp centred on exon-intron boundaries; 0 neither, 1 donor, 2 acceptor", "neither",
             (SiteLabel("donor", "donor", DONOR, "splice", "GT", 0),
              SiteLabel("acceptor", "acceptor", ACCEPTOR, "splice", "AG", -1)),
             negatives=("genomic",)),
    TaskKind("tts", "300 bp, -249..+50 around transcription termination sites (a transcript's last base)",
             "non-tts", (SiteLabel("tts", "tts", PROMOTER, "tts"),)),
)}

# Calls carry label names; promoter and core-promoter share "promoter", which means the same site.
SITE_LABELS = {label.name: label for kind in KINDS.values() for label in kind.sites}


def task_kind(name: str) -> TaskKind:
    if name not in KINDS:
        raise UserError(f"unknown task {name!r}; choose one of {', '.join(KINDS)}")
    return KINDS[name]


def label_position(labels, name: str) -> int | None:
    """The index of a label given by name or by its index among `labels`; None if it is neither."""
    if name in labels:
        return list(labels).index(name)
    return int(name) if name.isdigit() and int(name) < len(labels) else None


def site_label(name: str) -> SiteLabel | None:
    """The site a call label stands for, or None for a label no task kind defines."""
    return SITE_LABELS.get(name)

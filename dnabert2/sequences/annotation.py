"""Gene annotation (GFF3, GTF or GenBank): transcripts with their exons, and from them TSSs, TTSs,
introns and donor/acceptor sites, strand-aware; and the transcripts set aside, whose sites are neither
labelled nor drawn as negatives. Coordinates are 0-based; intervals are half-open."""

import logging
import re
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path
from urllib.parse import unquote

from ..errors import UserError, first_names, naming_hint
from ..settings import MIN_INTRON
from .fasta import GENBANK_START, genbank_records, open_text, reading_text

log = logging.getLogger(__name__)

SITE_KINDS = ("tss", "tts", "donor", "acceptor")
# A GTF attribute: a key, a space and a value, double-quoted (where a ';' belongs to the value, as in
# RefSeq's notes), single-quoted (as some converters write it) or bare.
_GTF_ATTRIBUTE = re.compile(r'\s*([^\s;]+)\s+(?:"([^"]*)"|\'([^\']*)\'|([^";]*?))\s*(?:;|$)')
_TRANSCRIPT_KINDS = {"transcript", "mRNA"}
# UTR pieces, by the names GFF3 (SO) and GTF writers give them: with the CDS they imply the exons of a
# transcript written without exon lines, as the GFF3 specification allows.
_UTR_KINDS = {"five_prime_UTR", "three_prime_UTR", "UTR", "five_prime_utr", "three_prime_utr", "5UTR", "3UTR",
              "5'-UTR", "3'-UTR"}
# The lines a transcript is built from, by the part they give: GTF's stop codon lies outside its CDS,
# and ends a transcript known by its CDS alone; an intron line past its exons (AUGUSTUS's, from a
# contig's first base) marks it cut by a contig's end.
_PIECE_OF = {"exon": "exon", "CDS": "CDS", "start_codon": "codon", "stop_codon": "codon", "intron": "intron",
             **dict.fromkeys(_UTR_KINDS, "UTR")}
# Transcripts whose ends were cut or joined after transcription, by their GFF3 type, GTF biotype or
# GenBank feature (or ncRNA_class): a mature or precursor miRNA (its primary transcript starts and ends
# elsewhere; the hairpin is NCBI's precursor_RNA, a primary_transcript in its GFF3 and GTF, as its
# prim_transcript is too: gbkey tells them apart; and miRBase's miRNA_primary_transcript), a circular
# RNA (its ends are a back-splice), a mature tRNA, tmRNA or rRNA (RNase P and the rRNA operon's
# nucleases cut them from longer transcripts, in bacteria and mitochondria alike), a snoRNA or
# scaRNA (most are cut from their host gene's introns) and a piRNA (cut from a cluster's long transcript,
# or in nematodes from a capped precursor begun 2 bases before it). Their exons are real, their first and last
# bases no TSS or TTS; a real one may lie near (a tRNA's leader is a few bases): set aside.
_PROCESSED_KINDS = {"miRNA", "pre_miRNA", "precursor_RNA", "miRNA_primary_transcript", "circular_ncRNA", "circRNA",
                    "tRNA", "Mt_tRNA", "tmRNA", "rRNA", "Mt_rRNA", "snoRNA", "scaRNA", "piRNA"}
# GenBank's features of transcripts (a GFF3's exon parents).
_GENBANK_RNA = ("mRNA", "ncRNA", "rRNA", "tRNA", "tmRNA", "misc_RNA", "precursor_RNA", "prim_transcript")
# Where annotations name a feature's own biotype, and its gene's, in attributes (Ensembl, GENCODE,
# RefSeq, WormBase): beside the GFF3 type (mRNA, lnc_RNA), what --biotype matches.
_OWN_BIOTYPE = ("biotype", "transcript_biotype", "transcript_type")
_GENE_BIOTYPE = ("gene_biotype", "gene_type")
# GFF3 attributes of comma-separated values, unescaped one by one (an escaped comma, %2C, belongs to a
# value): a feature's parents, and the tags GENCODE, Ensembl and RefSeq give transcripts (basic,
# Ensembl_canonical, MANE_Select, "MANE Select"), which GTF writes as one repeated key instead.
_LISTS = ("Parent", "tag", "exception")
# The lines of a whole sequence: NCBI's region, Ensembl's chromosome and scaffold (both mark a circular one
# Is_circular=true).
_SEQUENCE_KINDS = ("region", "chromosome", "scaffold", "supercontig")
# Tags by which GENCODE and Ensembl say a transcript's model stops short of its 5' or 3' end: the end
# it has is no TSS or TTS, and the real one lies past it, where is not known.
_UNFOUND_TAGS = {"mRNA_start_NF": "tss", "mRNA_end_NF": "tts"}
# Attributes that mark a feature cut by a contig's end, whatever their value: NCBI's, and glimmer's
# bare words.
_PARTIAL_KEYS = frozenset({"start_range", "end_range", "Lack 5'-end", "Lack 3'-end", "Lack both ends"})
_STRANDS = {1: "+", -1: "-"}  # Biopython's strands


@dataclass(frozen=True)
class Transcript:
    id: str
    gene: str
    contig: str
    strand: str
    exons: tuple[tuple[int, int], ...]  # sorted, 0-based half-open
    coding: bool = False  # built from CDS alone: its ends are the start codon and the stop codon's end
    processed: bool = False  # its ends are not where transcription started and ended (_PROCESSED_KINDS)
    biotypes: frozenset[str] = frozenset()  # what --biotype matches (see _Features.biotypes)
    tags: frozenset[str] = frozenset()  # what --tag matches: its own tag attributes

    @property
    def start(self) -> int:
        return self.exons[0][0]

    @property
    def end(self) -> int:
        return self.exons[-1][1]

    @property
    def pseudogenic(self) -> bool:
        """Whether a biotype says it is a pseudogene's (pseudogenic_transcript, processed_pseudogene,
        RefSeq's gene_biotype pseudogene, …)."""
        return any("pseudogen" in biotype.lower() for biotype in self.biotypes)

    @property
    def unfound(self) -> set[str]:
        """Its ends ("tss", "tts") that are no known TSS or TTS: those its annotators did not find
        (_UNFOUND_TAGS), a processed transcript's, and a pseudogene's (a processed one, a retrocopy, has
        no promoter; a disabled copy of a gene may have none). A pseudogene's introns are the gene's it
        copies: sites still."""
        if self.pseudogenic or self.processed:
            return {"tss", "tts"}
        return {kind for tag, kind in _UNFOUND_TAGS.items() if tag in self.tags}

    @property
    def tss(self) -> int:
        """The first transcribed base."""
        return self.start if self.strand == "+" else self.end - 1

    @property
    def tts(self) -> int:
        """The last transcribed base."""
        return self.end - 1 if self.strand == "+" else self.start

    def site(self, kind: str) -> "Site":
        """Its TSS or TTS, as a Site."""
        return Site(self.contig, getattr(self, kind), self.strand, kind)

    @property
    def introns(self) -> list[tuple[int, int]]:
        return [(a[1], b[0]) for a, b in zip(self.exons, self.exons[1:]) if b[0] > a[1]]


@dataclass(frozen=True, order=True)
class Gene:
    """A gene's span: from the first of its transcripts' starts to the last of their ends."""

    contig: str
    start: int
    end: int
    strand: str
    id: str


@dataclass(frozen=True, order=True)
class Site:
    """A single base: a TSS (first transcribed base), a TTS (last transcribed base), a donor (the
    intron's first base, the G of GT) or an acceptor (the intron's last base, the G of AG); strand is
    the transcript's."""

    contig: str
    position: int
    strand: str
    kind: str  # one of SITE_KINDS


@dataclass(frozen=True, order=True)
class Intron:
    contig: str
    start: int
    end: int
    strand: str

    @property
    def donor(self) -> Site:
        pos = self.start if self.strand == "+" else self.end - 1
        return Site(self.contig, pos, self.strand, "donor")

    @property
    def acceptor(self) -> Site:
        pos = self.end - 1 if self.strand == "+" else self.start
        return Site(self.contig, pos, self.strand, "acceptor")


class Annotation:
    """Transcripts, and the sites on them. A gap between two exons shorter than `min_intron` is no
    intron: annotations mark ribosomal frameshifts (yeast Ty elements, E. coli prfB) and indels in
    the genome that way, and their ends are no splice sites. The transcripts left out (of other
    biotypes or tags than asked for, whose exons may be incomplete, of pseudogenes, of one id at
    several places, across the origin of a circular sequence, or on no strand) are set aside: their
    sites are real or may be, so a task neither labels them nor draws them as negatives (unlabelled).
    Intron lines of no transcript (the RNA-seq junctions of WormBase's GFF3) are `observed`: evidence,
    not annotation."""

    def __init__(self, path, transcripts: list[Transcript], min_intron: int = MIN_INTRON,
                 left_out: list[Transcript] = (), observed: list[Intron] = (), stated: set[str] = frozenset()):
        self.path = Path(path)
        self.stated = set(stated)  # the contigs whose shape (circular or not) the annotation states
        self.transcripts = transcripts
        self.left_out = list(left_out)
        self.observed = list(observed)
        self.min_intron = min_intron
        short = sum(1 for t in transcripts for start, end in t.introns if end - start < min_intron)
        if short:
            log.info("%s: %d gap(s) between exons shorter than %d bp (frameshifts, indels) not taken as introns",
                     self.path, short, min_intron)

    @property
    def contigs(self) -> set[str]:
        return {t.contig for t in self.transcripts}

    @property
    def annotated_contigs(self) -> set[str]:
        """The contigs it annotates, those of the transcripts left out (by --biotype, …) too."""
        return self.contigs | {t.contig for t in self.left_out}

    def genes(self) -> list[Gene]:
        spans = {}
        for t in self.transcripts:
            key = (t.gene, t.contig, t.strand)
            start, end = spans.get(key, (t.start, t.end))
            spans[key] = (min(start, t.start), max(end, t.end))
        return sorted(Gene(contig, start, end, strand, gene) for (gene, contig, strand), (start, end) in spans.items())

    def tss(self) -> list[Site]:
        return self.sites({"tss"})

    def tts(self) -> list[Site]:
        return self.sites({"tts"})

    def introns(self) -> list[Intron]:
        return _introns(self.transcripts, self.min_intron)

    def splice_sites(self) -> list[Site]:
        return _splice_sites(self.transcripts, self.min_intron)

    def sites(self, kinds) -> list[Site]:
        """The annotated sites of the given kinds (SITE_KINDS), sorted."""
        unknown = set(kinds) - set(SITE_KINDS)
        if unknown:
            raise ValueError(f"no annotated sites of kind {', '.join(sorted(unknown))}; known: {', '.join(SITE_KINDS)}")
        for kind, ends in (("tss", "start codons"), ("tts", "CDS ends, stop codons included")):
            if kind in kinds:
                self._say_ends(kind, ends)
        return sorted(_sites(self.transcripts, kinds, self.min_intron))

    def sites_required(self, kinds) -> list[Site]:
        """The annotated sites of the given kinds, or a UserError where there is none: an annotation
        without the features (or none left by --min-intron, --biotypes, --tags) has nothing to score."""
        found = self.sites(kinds)
        if not found:
            raise UserError(f"{self.path}: no annotated {' or '.join(f'{k} sites' for k in kinds)}")
        return found

    def _say_ends(self, kind: str, coding_ends: str) -> None:
        """Say how many transcripts give no TSS (TTS), or one only as close as the annotation comes."""
        what = kind.upper()
        coding = sum(t.coding for t in self.transcripts)
        if coding:
            log.warning("%s: %d of %d transcripts have CDS but no exons: their %ss are their %s (the closest the "
                        "annotation comes)", self.path, coding, len(self.transcripts), what, coding_ends)
        processed = sum(t.processed for t in self.transcripts)
        if processed:  # heard under -q where it leaves none
            (log.warning if processed == len(self.transcripts) else log.info)(
                "%s: %d transcript(s) of tRNAs, rRNAs, snoRNAs, miRNAs, piRNAs or circular RNAs give no %s (their ends were "
                "cut or joined after transcription)", self.path, processed, what)
        unfound = sum(kind in t.unfound and not t.processed for t in self.transcripts)
        if unfound:
            tag = next(tag for tag, end in _UNFOUND_TAGS.items() if end == kind)
            log.info("%s: %d transcript(s) of pseudogenes or tagged %s give no %s", self.path, unfound, tag, what)

    def unlabelled(self, kinds) -> list[Site]:
        """The sites of the given kinds that only transcripts left out give, and the ends of any whose
        annotators did not find them (a real one lies near, past it), sorted."""
        unfound = {t.site(kind) for t in self.transcripts + self.left_out for kind in t.unfound & set(kinds)}
        return sorted((set(_sites(self.left_out, kinds, self.min_intron)) | unfound)
                      - set(_sites(self.transcripts, kinds, self.min_intron)))

    def observed_sites(self, kinds) -> list[Site]:
        """The splice sites of the given kinds of the `observed` introns that no transcript gives, sorted.
        Window tasks draw no negative there: a negative is drawn, and may be drawn elsewhere. Dense tasks,
        which label every base, and scan-eval count them as background, as SpliceAI's training and
        evaluation count every base outside its annotation, so that their figures compare."""
        found = {site for site in _intron_ends(self.observed, self.min_intron) if site.kind in kinds}
        return sorted(found - set(_splice_sites(self.transcripts, self.min_intron)))

    def keep(self, biotypes=None, tags=None) -> None:
        """Keep the transcripts of one of these biotypes (see _Features.biotypes) and with one of these
        tags, where any are given; raise a UserError, naming the biotypes or tags there are, if none is."""
        among = ""  # the transcripts a second filter chooses from, in words
        for noun, wanted in (("biotype", biotypes), ("tag", tags)):
            if wanted:
                self._keep(noun, set(wanted), among)
                among = f" of biotype {', '.join(sorted(set(wanted)))}"

    def _keep(self, noun: str, wanted: set[str], among: str) -> None:
        of = {"biotype": "of biotype", "tag": "tagged"}[noun]
        kept = [t for t in self.transcripts if getattr(t, f"{noun}s") & wanted]
        self.left_out += [t for t in self.transcripts if not getattr(t, f"{noun}s") & wanted]
        there = sorted({value for t in self.transcripts for value in getattr(t, f"{noun}s")})
        named = (f"the {noun}s of its transcripts{among} are {first_names(there, 12)}" if there
                 else f"its transcripts{among} have no {noun}")
        if not kept:
            raise UserError(f"{self.path}: no transcript{among} {of} {', '.join(sorted(wanted))}; {named}")
        absent = sorted(wanted - set(there))
        if absent:
            log.warning("%s: no transcript%s %s %s; %s", self.path, among, of, ", ".join(absent), named)
        log.info("%s: %d of %d transcripts%s %s %s kept", self.path, len(kept), len(self.transcripts), among, of,
                 ", ".join(sorted(wanted)))
        self.transcripts = kept

    def keep_genome_contigs(self, lengths: Mapping[str, int], genome="the genome") -> None:
        """Keep the transcripts on the genome's contigs, saying which contigs the genome lacks (a genome of
        some chromosomes, or without the unplaced scaffolds, against a whole annotation), as bedtools
        skips them; raise a UserError if it has none of them (contigs named otherwise), or a transcript
        runs past its contig's end."""
        missing = sorted(self.contigs - set(lengths))
        if missing == sorted(self.contigs):
            if aside := sorted(self.annotated_contigs & set(lengths)):
                raise UserError(f"{self.path}: no transcript kept is on a contig of {genome} (they are on "
                                f"{first_names(missing)}); those left out (by --biotype or --tag, or as warned) are on "
                                f"{first_names(aside)}")
            missing = sorted(self.annotated_contigs - set(lengths))  # those of transcripts left out too
            raise UserError(f"{self.path}: none of its {len(missing)} contig(s) is in {genome}: {first_names(missing)} "
                            f"(it has {first_names(list(lengths))}){naming_hint(missing, lengths)}")
        if missing:
            left = [t for t in self.transcripts if t.contig in lengths]
            log.warning("%s: %d contig(s) not in %s, their %d transcript(s) left out: %s%s", self.path, len(missing),
                        genome, len(self.transcripts) - len(left), first_names(missing), naming_hint(missing, lengths))
            self.transcripts = left
        self.left_out = [t for t in self.left_out if t.contig in lengths and t.end <= lengths[t.contig]]
        self.observed = [i for i in self.observed if i.contig in lengths and i.end <= lengths[i.contig]]
        for t in self.transcripts:
            if t.end > lengths[t.contig]:
                raise UserError(
                    f"{self.path}: transcript {t.id} ends at {t.end}, past the end of "
                    f"{t.contig} ({lengths[t.contig]} bp) in {genome}"
                )
        self._across_origin(lengths)

    def _across_origin(self, lengths: Mapping[str, int]) -> None:
        """Set aside the transcripts with exons at both ends of a contig whose shape the annotation
        does not state (a GTF; a GFF3 without a line of the whole sequence, as NCBI's region and
        Ensembl's chromosome lines): across the origin of a circular one, joined as one they would span
        the contig with an intron of nearly all of it. A transcript of a linear contig cut to its gene
        goes too, the safe side (said in a warning)."""
        runs = {id(t): _around(t.exons, lengths[t.contig]) if t.contig not in self.stated else []
                for t in self.transcripts}
        across = [t for t in self.transcripts if runs[id(t)]]
        if across:
            log.warning("%s: %d transcript(s) with exons at both ends of their contig (across the origin of a "
                        "circular sequence, as the annotation does not say which are) left out: %s", self.path,
                        len(across), first_names([t.id for t in across]))
            self.transcripts = [t for t in self.transcripts if not runs[id(t)]]
            self.left_out += [replace(t, exons=run) for t in across for run in runs[id(t)]]


def _ends(transcripts, kind: str) -> list[Site]:
    """TSSs or TTSs, but no end that is none (see Transcript.unfound)."""
    return sorted({t.site(kind) for t in transcripts if kind not in t.unfound})


def _introns(transcripts, min_intron: int) -> list[Intron]:
    return sorted({Intron(t.contig, s, e, t.strand) for t in transcripts for s, e in t.introns if e - s >= min_intron})


def _splice_sites(transcripts, min_intron: int) -> list[Site]:
    return _intron_ends(_introns(transcripts, min_intron), min_intron)


def _intron_ends(introns, min_intron: int) -> list[Site]:
    return sorted({site for i in introns if i.end - i.start >= min_intron for site in (i.donor, i.acceptor)})


def _sites(transcripts, kinds, min_intron: int) -> list[Site]:
    found = [s for kind in ("tss", "tts") if kind in kinds for s in _ends(transcripts, kind)]
    return found + [s for s in _splice_sites(transcripts, min_intron) if s.kind in kinds]


def _gff3_attributes(text: str) -> dict[str, str]:
    """The attributes, unescaped; those of _LISTS as written, their values unescaped by _values. A
    field without '=' (glimmer's "Lack 3'-end") is a key of no value."""
    attrs = {}
    for field in text.strip().strip(";").split(";"):
        key, _, value = field.partition("=")
        key = key.strip()
        if key:
            attrs[key] = value if key in _LISTS or "%" not in value else unquote(value)
    return attrs


def _biotypes(attrs: dict[str, str], keys) -> set[str]:
    return {attrs[key] for key in keys if attrs.get(key)}


def _owners(parse, kind: str, attrs: dict[str, str]) -> list[tuple[str | None, str | None]]:
    """(transcript, gene) of each transcript a piece belongs to: GTF's transcript_id and gene_id, or
    GFF3's Parents (their gene found later)."""
    if parse is _gtf_attributes:
        return [(attrs.get("transcript_id"), attrs.get("gene_id", ""))]
    if "Parent" in attrs:
        return [(p, None) for p in _parents(attrs)]
    if kind == "CDS":  # Prodigal and Prokka write each CDS alone, with an ID and no parent
        return [(attrs.get("ID"), None)]
    return []


def _parents(attrs: dict[str, str]) -> list[str]:
    return _values(_gff3_attributes, attrs, "Parent")


def _values(parse, attrs: dict[str, str], key: str) -> list[str]:
    """The values of an attribute of _LISTS: GFF3's comma-separated, GTF's repeated key (joined by
    _gtf_attributes with a tab, which no column holds)."""
    if key not in attrs:
        return []
    if parse is _gtf_attributes:
        return attrs[key].split("\t")
    return [unquote(value.strip()) for value in attrs[key].split(",")]


def _trans_spliced(exceptions) -> bool:
    """Whether a feature's exceptions name trans-splicing (NCBI's may name more: "trans-splicing, RNA
    editing")."""
    return any("trans-splicing" in value for value in exceptions)


def _partial(attrs: dict[str, str]) -> bool:
    """Whether a feature is marked as running past what is known: NCBI's partial=true (start_range,
    end_range), Prodigal's and GeneMarkS-2's partial=01, 10 or 11 (a gene cut by a contig's end),
    glimmer's "Lack 5'-end", "Lack 3'-end" or "Lack both ends"."""
    flag = attrs.get("partial", "")
    coded = len(flag) == 2 and set(flag) <= {"0", "1"} and flag != "00"
    return flag == "true" or coded or not attrs.keys().isdisjoint(_PARTIAL_KEYS)


def _gtf_attributes(text: str) -> dict[str, str]:
    attrs = {}
    for m in _GTF_ATTRIBUTE.finditer(text):
        key, value = m[1], m[m.lastindex]  # the value's group is the one of the branch that matched
        attrs[key] = f"{attrs[key]}\t{value}" if key in _LISTS and key in attrs else value
    return attrs


def read_annotation(path, min_intron: int = MIN_INTRON, biotypes=None, tags=None) -> Annotation:
    """Read transcripts from a GFF3, GTF or GenBank file (plain or gzip), of the given biotypes and
    tags only if any are given (see Annotation.keep). A transcript is the parent of exon features; a parent
    with CDS but no exons (as in bacterial RefSeq GFF3) is built from its CDS (its TSS is then the start
    codon, the best the annotation says), and a CDS without a parent (Prodigal, Prokka) is a transcript
    of its own. In GenBank, the RNA features of a record are its transcripts (mRNA, tRNA, ncRNA, …),
    and the CDS that no mRNA of their gene overlaps. Transcripts it cannot trust (ids that name exons
    at several places, transcripts across the origin of a circular sequence, whose exons may be
    incomplete, of pseudogenes) are set aside with a log message (Annotation.left_out)."""
    path = Path(path)
    read = _genbank_transcripts if GENBANK_START.match(_first_line(path)) else _gff_transcripts
    transcripts, left_out, observed, stated = read(path)
    annotation = Annotation(path, transcripts, min_intron, left_out, observed, stated)
    annotation.keep(biotypes, tags)
    return annotation


def _first_line(path: Path) -> str:
    with reading_text(path, "GFF3/GTF/GenBank"), open_text(path) as handle:
        return next((line for line in handle if line.strip()), "")


def _genbank_transcripts(path: Path) -> tuple[list[Transcript], list[Transcript], list[Intron], set[str]]:
    """Transcripts from GenBank features (Biopython), on the records' ids as contigs (see
    _transcript_features); and those left out: as incomplete (an end marked < or >, or given as one
    of several: past what the record holds), a CDS marked /pseudo or /pseudogene, or a feature no
    transcript can be made of (with a count: see _unplaced; what it holds in this record is set aside
    by _runs). GenBank has no intron features of no transcript to observe."""
    from Bio.SeqFeature import ExactPosition

    transcripts, incomplete, aside, names, skipped = [], [], [], set(), Counter()
    with reading_text(path, "GenBank"), open_text(path) as handle:
        for record in genbank_records(path, handle):
            for feature in _transcript_features(record):
                locus_tag, protein_id, gene_name = (feature.qualifiers.get(key, [None])[0]
                                                    for key in ("locus_tag", "protein_id", "gene"))
                label = locus_tag or protein_id or gene_name
                if feature.location is None:  # Biopython could not read it, and said so only in a warning
                    raise UserError(f"{path}: record {record.id}: the location of {feature.type} "
                                    f"{label or '(unnamed)'} cannot be read")
                coding = feature.type == "CDS"
                trans_spliced = "trans_splicing" in feature.qualifiers \
                    or _trans_spliced(feature.qualifiers.get("exception", ()))
                why = _unplaced(feature.location) or ("marked trans-splicing" if trans_spliced else None)
                if why:
                    skipped[why] += 1
                    # What it holds here is real all the same: set aside run by run, its sites unlabelled.
                    label = label or f"{record.id}:{feature.type}"
                    aside += [Transcript(label, label, record.id, strand, exons, coding)
                              for strand, exons in _runs(feature.location)]
                    continue
                strand = _STRANDS[feature.location.strand]
                exons = tuple(_merge((int(p.start), int(p.end)) for p in feature.location.parts))
                # Unnamed, it is named by its span as `windows` and bedtools getfasta name one: 0-based, half-open.
                name = label or f"{record.id}:{exons[0][0]}-{exons[-1][1]}({strand})"
                name = name if name not in names else f"{name}.{feature.type}{len(names)}"
                names.add(name)
                # Bacteria repeat gene names (insA, tnpA): the locus_tag tells their genes apart.
                gene = locus_tag or gene_name or name
                # What a GFF3 names in gene_biotype, GenBank's feature says: a CDS or mRNA is protein_coding,
                # one marked /pseudo or /pseudogene a pseudogene's (see Transcript.pseudogenic).
                pseudo = bool({"pseudo", "pseudogene"} & feature.qualifiers.keys())
                of_protein = feature.type in ("CDS", "mRNA")
                gene_biotype = {"pseudogene"} if pseudo else {"protein_coding"} if of_protein else set()
                biotypes = frozenset({feature.type, *feature.qualifiers.get("ncRNA_class", ()), *gene_biotype})
                transcript = Transcript(name, gene, record.id, strand, exons, coding, bool(biotypes & _PROCESSED_KINDS),
                                        biotypes)
                if pseudo and coding:  # a pseudogene's broken reading frame makes no transcript; its sites may be real
                    aside.append(transcript)
                elif all(type(end) is ExactPosition for end in (feature.location.start, feature.location.end)):
                    transcripts.append(transcript)
                else:
                    incomplete.append(transcript)
    for why, count in skipped.items():
        log.warning("%s: %d feature(s) %s left out", path, count, why)
    if incomplete:
        log.warning("%s: %d transcript(s) with an end marked < or > (or one of several), left out: %s", path,
                    len(incomplete), first_names([t.id for t in incomplete]))
    if not transcripts:
        why = "every one left out, as said above" if skipped or incomplete or aside else "no RNA or CDS features"
        raise UserError(f"{path}: no transcripts found ({why})")
    transcripts.sort(key=lambda t: (t.contig, t.start, t.id))
    # A record says whether it is circular, and a join across its origin is written out of order.
    return transcripts, incomplete + aside, [], {t.contig for t in transcripts + incomplete + aside}


def _transcript_features(record) -> list:
    """A GenBank record's features of transcripts: its RNA features (_GENBANK_RNA; an ncRNA's biotypes
    are its type and ncRNA_class), and the CDS that no mRNA of their gene overlaps (bacteria and phages
    are annotated with CDS alone)."""
    rna = [f for f in record.features if f.type in _GENBANK_RNA]
    mrna = [f for f in rna if f.type == "mRNA"]
    # An mRNA owns a CDS on its strand that overlaps it (a partial model's CDS may run past it) and
    # shares its /gene or /locus_tag, none of them disagreeing (bacteria repeat names, insA: a CDS of
    # that name elsewhere is another gene's); or a CDS inside it, where it names none of what the CDS
    # names (phiX174's mRNAs name no gene). An mRNA across the origin has no span (see _Spans): it
    # owns the CDS sharing its names wherever they lie.
    sharing = defaultdict(list)  # (qualifier, value) -> the mRNAs naming it
    for f in mrna:
        for named in _names(f).items():
            sharing[named].append(f)
    unnaming = {lacks: _Spans(f.location for f in mrna if _names(f).keys() <= lacks)
                for lacks in map(frozenset, ((), ("gene",), ("locus_tag",), _GENE_QUALIFIERS))}

    def owned(cds) -> bool:
        names = _names(cds)
        for mrna_of in {id(m): m for named in names.items() for m in sharing[named]}.values():
            theirs = _names(mrna_of)
            if all(theirs.get(key, value) == value for key, value in names.items()) \
                    and mrna_of.location is not None and cds.location is not None \
                    and (_across_origin(mrna_of.location) or _overlap(mrna_of.location, cds.location)):
                return True
        return unnaming[frozenset(_GENE_QUALIFIERS).difference(names)].contain(cds.location)

    return rna + [f for f in record.features if f.type == "CDS" and not owned(f)]


_GENE_QUALIFIERS = ("gene", "locus_tag")


def _overlap(a, b) -> bool:
    """Whether two Biopython locations share a base of one strand, by their spans."""
    return a.strand == b.strand and int(a.start) < int(b.end) and int(b.start) < int(a.end)


def _names(feature) -> dict[str, str]:
    """The gene a GenBank feature names, by the qualifiers it has of _GENE_QUALIFIERS."""
    return {key: feature.qualifiers[key][0] for key in _GENE_QUALIFIERS if feature.qualifiers.get(key)}


def _unplaced(location) -> str | None:
    """Why a GenBank feature's location gives no transcript, if it gives none."""
    if location.strand not in (1, -1):
        return "on no single strand"
    if any(part.ref for part in location.parts):
        return "with parts in other records"
    if getattr(location, "operator", "join") != "join":
        return "of order() rather than join()"
    if _across_origin(location):
        return "joined out of order (across the origin of a circular sequence, or trans-spliced)"
    return None


class _Spans:
    """Biopython locations by strand, asked whether one of them contains a given location: starts
    sorted with the running maximum of their ends, so each question is one binary search. A location
    across the origin of a circular sequence (its parts out of order) has no span and contains nothing."""

    def __init__(self, locations):
        spans = defaultdict(list)
        for location in locations:
            if location is not None and not _across_origin(location):
                spans[location.strand].append((int(location.start), int(location.end)))
        self.starts, self.reach = {}, {}
        for strand, found in spans.items():
            found.sort()
            self.starts[strand] = [start for start, _ in found]
            self.reach[strand] = list(accumulate((end for _, end in found), max))

    def contain(self, location) -> bool:
        if location is None or location.strand not in self.starts:
            return False
        i = bisect_right(self.starts[location.strand], int(location.start))
        return i > 0 and self.reach[location.strand][i - 1] >= int(location.end)


def _runs(location) -> list[tuple[str, tuple]]:
    """The strands and exons of a GenBank location's runs of parts in this record, each in order on one
    strand: a run ends at a part on the other strand, out of order (at the origin of a circular
    sequence, or trans-spliced) or in another record. A part on no strand makes a run on each."""
    runs, previous = [], None  # previous: the strand and interval of the part that a run may go on from
    for part in location.parts:
        interval = (int(part.start), int(part.end))
        strand = _STRANDS.get(part.strand)
        if part.ref:
            previous = None
        elif strand is None:
            runs += [(either, [interval]) for either in "+-"]
            previous = None
        else:
            if previous and previous[0] == strand and (previous[1] < interval) == (strand == "+"):
                runs[-1][1].append(interval)
            else:
                runs.append((strand, [interval]))
            previous = (strand, interval)
    return [(strand, tuple(_merge(parts))) for strand, parts in runs]


def _across_origin(location) -> bool:
    """Whether a Biopython location is joined across the origin of a circular sequence (its parts out of
    order on its strand): it has no linear span."""
    parts = [(int(p.start), int(p.end)) for p in location.parts]
    return parts != sorted(parts, reverse=location.strand == -1)


def _gff_transcripts(path: Path) -> tuple[list[Transcript], list[Transcript], list[Intron], set[str]]:
    """The transcripts, those set aside (see _gff_assembled), the intron lines of none, and the
    contigs a line of the whole sequence (_SEQUENCE_KINDS) states the shape of."""
    pieces, features = _Pieces(), _Features()
    circular = {}  # contig -> length, from the lines of whole sequences marked Is_circular=true
    stated = set()  # contigs of such a line, marked or not
    parse = None
    with reading_text(path, "GFF3/GTF"), open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            if line.startswith("##FASTA"):
                break
            if not line.strip() or line.startswith(("#", "track ", "browser ")):  # UCSC's header lines too
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) == 10 and not fields[9].strip():  # a tab after the last column (TSEBRA, MITOS)
                del fields[9]
            if len(fields) != 9:
                fasta = "; a FASTA section without its ##FASTA line?" if line.startswith(">") else ""
                raise UserError(f"{path}: line {number} has {len(fields)} tab-separated fields, not 9 (not GFF3/GTF"
                                f"{fasta})")
            contig, source, kind, start, end, _, strand, _, attributes = fields
            # AUGUSTUS writes bare ids ("g1") on gene and transcript lines: the first line with key-value
            # attributes tells GTF from GFF3.
            parse = parse or _attribute_reader(attributes)
            if parse is None:
                continue
            attrs = parse(attributes)
            piece = _PIECE_OF.get(kind)
            # The lines that define a feature: in GFF3 one ID on several lines is one discontinuous
            # feature; in GTF a transcript has one transcript line, and an id on two names two transcripts.
            defines = bool(attrs.get("transcript_id")) and kind in _TRANSCRIPT_KINDS if parse is _gtf_attributes \
                else piece is None and "ID" in attrs
            # The ends of other features' lines (a gene, a repeat_region) are neither read nor checked.
            located = piece or kind in _TRANSCRIPT_KINDS or kind in _SEQUENCE_KINDS or kind == "pseudogene"
            interval = _interval(path, number, start, end) if located else (None, None)
            features.read(parse, source, kind, attrs, (contig, strand, *interval, source) if defines else None)
            if kind == "pseudogene" and parse is _gff3_attributes and "ID" in attrs and strand in "+-":
                features.pseudogenes.setdefault(attrs["ID"], (contig, strand, interval))
            if kind in _SEQUENCE_KINDS and interval[0] == 0:  # a whole sequence's, not a region of one
                stated.add(contig)
                if attrs.get("Is_circular") == "true":
                    circular[contig] = interval[1]
            if piece:
                pieces.add(parse, kind, piece, attrs, (contig, strand, interval), features.typed)
    if pieces.lines_unstranded:
        log.warning("%s: %d exon, CDS, UTR or intron line(s) with no strand + or -: their transcripts left out",
                    path, pieces.lines_unstranded)
    if not (pieces.parts["exon"] or pieces.parts["CDS"]):
        what = "no exon or CDS line with a transcript_id (GFF2 is not read)" if parse is _gtf_attributes \
            else "no exon or CDS features with a parent"
        raise UserError(f"{path}: no transcripts found ({what})")
    pieces.proteins_apart(features.pseudo, features.typed)
    # GTF has no IDs; a GFF3 none of whose Parents a line defines (exon or CDS lines alone) is taken as it is.
    owners = set().union(*pieces.parts.values())
    undefined = set() if parse is _gtf_attributes or not features.defined & owners else owners - features.defined
    features.old_ensembl()
    return *_gff_assembled(path, pieces, features, circular, undefined), pieces.observed, stated


def _interval(path: Path, number: int, start: str, end: str) -> tuple[int, int]:
    """A line's start and end, 0-based half-open."""
    try:
        interval = (int(start) - 1, int(end))
    except ValueError:
        raise UserError(f"{path}: line {number}: start/end are not integers") from None
    if not 0 <= interval[0] < interval[1]:
        raise UserError(f"{path}: line {number}: start {start} is after end {end} (or below 1)")
    return interval


class _Pieces:
    """The exon, CDS, UTR, start and stop codon and intron pieces of each transcript, by its id."""

    def __init__(self):
        self.parts = {piece: defaultdict(list) for piece in ("exon", "CDS", "UTR", "codon", "intron")}
        # A transcript missing one of its pieces would gain an intron, or lose an end, that no annotation
        # holds: (transcript, codon?) with a piece on no strand, and (GTF gene, codon?) with a piece of no
        # transcript_id; a codon line matters only to a transcript known by its CDS alone.
        self.unstranded, self.orphaned = set(), set()
        # GTF gene -> (contig, strand, interval) of its pieces of no transcript_id: a gene no line of
        # which names one has no transcript, and its sites must still be set aside.
        self.orphans = defaultdict(list)
        self.lines_unstranded = 0
        self.unstranded_exons = defaultdict(list)  # transcript -> (contig, interval) of its exon pieces on no strand
        # A gene line's CDS pieces by their own IDs (see proteins_apart): gene -> CDS ID -> its pieces.
        self.proteins = defaultdict(lambda: defaultdict(list))
        # GTF transcript -> (exon lines with an exon_number, the lowest, the highest): see renumbered.
        self.exon_numbers = {}
        self.observed = []  # GFF3 intron lines of no transcript (WormBase's RNASeq_splice)

    def add(self, parse, kind: str, piece: str, attrs: dict[str, str], where: tuple, typed: dict) -> None:
        """Add a line's piece to its transcripts; typed: the GFF3 types of the IDs read so far."""
        contig, strand, interval = where
        owners = _owners(parse, kind, attrs)
        codon = piece == "codon"
        if parse is _gtf_attributes:
            (transcript, gene), = owners
            if not transcript and gene:  # MAKER and liftover GTFs write no gene_id at all: none to leave out
                self.orphaned.add((gene, codon))
                if piece != "intron":
                    self.orphans[gene].append((contig, strand, interval))
        if strand not in ("+", "-"):  # a site needs a strand: which end is a donor, which an acceptor
            self.unstranded.update((transcript, codon) for transcript, _ in owners if transcript)
            self.lines_unstranded += not codon and any(transcript for transcript, _ in owners)
            for transcript, _ in owners:
                if transcript and piece == "exon":
                    self.unstranded_exons[transcript].append((contig, interval))
            return
        if piece == "intron" and not owners:
            self.observed.append(Intron(contig, *interval, strand))
        number = attrs.get("exon_number", "") if parse is _gtf_attributes and piece == "exon" else ""
        for transcript, gene in owners:
            if transcript:
                self.parts[piece][transcript].append((contig, strand, interval, gene))
                if number.isdigit():
                    n = int(number)
                    count, lowest, highest = self.exon_numbers.get(transcript, (0, n, n))
                    self.exon_numbers[transcript] = (count + 1, min(lowest, n), max(highest, n))
                # A Parent not read yet may be a gene line (a file sorted by position puts CDS first):
                # proteins_apart decides once all are read.
                if kind == "CDS" and "ID" in attrs and parse is _gff3_attributes \
                        and typed.get(transcript, "gene") == "gene":
                    self.proteins[transcript][attrs["ID"]].append((contig, strand, interval, gene))

    def proteins_apart(self, pseudo: set, typed: dict) -> None:
        """The CDS of several IDs that a gene line is the Parent of, with no transcript between, that
        overlap one another (RefSeq's bacterial alternative starts and ribosomal-slippage products:
        mrcB, infB, dnaX): each ID a transcript of its own, as GenBank has them; as one, they would hide
        every start and stop but the outermost. CDS lines of one protein with an ID each (as some
        writers give them) lie apart: they stay one. So does a gene with other pieces (exons, UTRs,
        codons, CDS without an ID, or on no strand), and a pseudogene, set aside whole."""
        for gene, by_id in self.proteins.items():
            if len(by_id) < 2 or gene in pseudo or typed.get(gene) != "gene":  # most genes: one protein
                continue
            spans = [(min(i[0] for _, _, i, _ in found), max(i[1] for _, _, i, _ in found))
                     for found in by_id.values()]
            alternatives = max(a for a, _ in spans) < min(b for _, b in spans)
            whole = sum(map(len, by_id.values())) == len(self.parts["CDS"][gene]) \
                and not any(gene in self.parts[piece] for piece in ("exon", "UTR", "codon")) \
                and not {(gene, False), (gene, True)} & self.unstranded
            if alternatives and whole:
                del self.parts["CDS"][gene]
                self.parts["CDS"].update(by_id)

    def renumbered(self, transcript: str) -> bool:
        """Whether a GTF transcript's exons, each numbered (exon_number), are more than their numbers
        (1..n, or 0..n-1) and more than n places: the numbering starts again at another copy of the id
        (an exon-only GTF cut from UCSC's, where one id names each copy of a gene, even on one contig,
        some copies partial), and no transcript line tells them apart. Exons all numbered alike (some
        converters write 0 or 1 on each) are no copies. An exon written as two lines of one number (an
        alignment's gap) looks like one: set aside too, the safe side (no false intron is labelled)."""
        count, lowest, highest = self.exon_numbers.get(transcript, (0, 0, 0))
        exons = self.parts["exon"].get(transcript, ())
        numbers = highest - lowest + 1
        return count == len(exons) and 1 < numbers < min(count, len({interval for _, _, interval, _ in exons}))

    def genes_of_no_transcript(self, path: Path, named: set) -> list[Transcript]:
        """The GTF genes with pieces whose lines all name no transcript_id (those `named` have another
        that does, left out as doubted), set aside. Which pieces join into which transcripts is unknown,
        so every piece stands alone (its ends a TSS and a TTS) and beside every piece apart from it on
        its contig and strand (their ends splice sites), on both strands where it is on none."""
        genes = sorted(set(self.orphans) - named)
        if genes:
            log.warning("%s: %d GTF gene(s) whose exon, CDS, UTR and codon lines name no transcript_id, left out: %s",
                        path, len(genes), first_names(genes))
        aside = []
        for gene in genes:
            places = defaultdict(set)
            for contig, strand, interval in self.orphans[gene]:
                for either in (strand,) if strand in ("+", "-") else "+-":
                    places[(contig, either)].add(interval)
            for (contig, strand), pieces in sorted(places.items()):
                pieces = sorted(pieces)
                aside += [Transcript(gene, gene, contig, strand, (piece,)) for piece in pieces]
                aside += [Transcript(gene, gene, contig, strand, (a, b)) for a in pieces for b in pieces if a[1] < b[0]]
        return aside

    def doubted(self, transcript: str, gene: str, coding: bool) -> bool:
        """Whether a piece of a transcript lay on no strand, or (GTF) one of its gene named no transcript."""
        return bool({(transcript, False), (transcript, coding)} & self.unstranded
                    or {(gene, False), (gene, coding)} & self.orphaned)


class _Features:
    """What the lines say of the features they name: by GFF3 ID, or in GTF by transcript_id (else
    gene_id)."""

    def __init__(self):
        self.parent_of = {}  # GFF3 feature ID -> its Parent (transcript -> gene)
        self.defined = set()  # GFF3 IDs that a line defines
        self.own = defaultdict(set)  # its own biotype attributes (_OWN_BIOTYPE)
        self.of_gene = defaultdict(set)  # its gene's, as its lines name them (_GENE_BIOTYPE)
        self.typed = {}  # GFF3 ID -> its type (mRNA, lnc_RNA, ...)
        self.tags = defaultdict(set)
        self.partial = set()  # those marked as running past what is known (_partial), by a line or a piece's
        # Liftoff's genes lifted over in part or at a low identity: their transcripts' exons may be missing
        self.lifted_poorly = set()
        self.pseudo = set()  # those with a CDS piece marked pseudo (see read)
        self.trans_spliced = set()  # those NCBI marks exception=trans-splicing, by a line or a piece's
        # GFF3 pseudogene lines: ID -> (contig, strand, interval); RefSeq's often have no child line
        self.pseudogenes = {}
        # GFF3 ID or GTF transcript_id -> (contig, strand, start, end, source) of the first line defining it
        # (not of its pieces; start and end None where not read: only transcript and mRNA lines apart are
        # told apart), and of every such line where there are several (most features have one: a set each
        # costs time)
        self.placed, self.loci = {}, defaultdict(set)
        self.gtf = False  # whether the file is GTF
        self.sources = defaultdict(set)  # GTF transcript_id -> the source column of its lines
        self.sourced = False  # whether those are the biotypes (old_ensembl)
        self.ncbi = set()  # GTF transcript_ids of NCBI's lines (with a gbkey): their biotype is a GFF3 type

    def read(self, parse, source: str, kind: str, attrs: dict[str, str], locus=None) -> None:
        self.gtf = parse is _gtf_attributes
        key = attrs.get("transcript_id") or attrs.get("gene_id") if self.gtf else attrs.get("ID")
        self.own[key] |= _biotypes(attrs, _OWN_BIOTYPE)
        if attrs.get("gbkey") == "precursor_RNA":  # NCBI's miRNA hairpin, which its GFF3 calls a primary_transcript
            self.own[key].add("precursor_RNA")
        self.of_gene[key] |= _biotypes(attrs, _GENE_BIOTYPE)
        if self.gtf:
            self.sources[key].add(source)
            if "gbkey" in attrs:
                self.ncbi.add(key)
        if attrs.get("partial_mapping") == "True" or attrs.get("low_identity") == "True":
            self.lifted_poorly.add(key)
        # RefSeq's CDS pieces of a pseudogene's broken reading frame make no transcript, nor does Bakta's
        # CDS cut by a contig's end (pseudo=True, as Python writes it): set aside, its sites unlabelled.
        if kind == "CDS" and attrs.get("pseudo", "").lower() == "true":
            self.pseudo.update(transcript for transcript, _ in _owners(parse, kind, attrs))
        if locus is not None and self.placed.setdefault(key, locus) != locus:
            self.loci[key].update((self.placed[key], locus))
        # A piece speaks for its transcripts too: GENCODE's GFF3 repeats their tags, GeneMarkS-2 marks its
        # CDS partial.
        tags, partial = _values(parse, attrs, "tag"), _partial(attrs)
        # Pieces of one strand joined from two transcripts (a chloroplast's rps12) have no intron between.
        trans_spliced = _trans_spliced(_values(parse, attrs, "exception"))
        if tags or partial or trans_spliced:
            owners = [t for t, _ in _owners(parse, kind, attrs) if t] if kind in _PIECE_OF else []
            for owner in [key, *owners]:
                self.tags[owner].update(tags)
                if partial:
                    self.partial.add(owner)
                if trans_spliced and owner:
                    self.trans_spliced.add(owner)
        if not self.gtf and key:
            self.typed[key] = kind
        if "ID" in attrs:
            self.defined.add(attrs["ID"])
            if "Parent" in attrs:
                self.parent_of[attrs["ID"]] = _parents(attrs)[0]
            elif "geneID" in attrs:  # gffread's GFF3: transcripts name their gene, and no line defines it
                self.parent_of[attrs["ID"]] = attrs["geneID"]

    def old_ensembl(self) -> None:
        """Ensembl's GTF before it named transcript_biotype (GRCh37's last, release 75, included), and
        Illumina's iGenomes built from it, writes a transcript's biotype in the source column, and at
        most its gene's in attributes: where a GTF names no transcript's own and that column says
        protein_coding, it is each transcript's own biotype."""
        if self.gtf and not any(self.own.values()) \
                and any("protein_coding" in sources for sources in self.sources.values()):
            self.sourced = True
            for key, sources in self.sources.items():
                self.own[key] = sources

    def defining(self, transcript: str) -> list[tuple]:
        """The places of the lines defining a transcript (see placed)."""
        if transcript not in self.placed:
            return []
        return self.loci.get(transcript) or [self.placed[transcript]]

    def misplaced(self, transcript: str, contigs_strands: set) -> bool:
        """Whether the lines defining a transcript lie on another contig or strand than its pieces (a
        line on no strand says nothing of one), or name two transcripts of one id: lines apart (UCSC's
        GTF repeats an id at each copy of a gene; funannotate's GFF3 gives two predictors' models one
        ID), or of two sources. (In GFF3 one ID may be one feature on several lines, not a transcript
        of lines apart: NCBI writes a trans-spliced one so, which has no intron between them.)"""
        loci = self.defining(transcript)
        (contig, strand), = contigs_strands
        if any(c != contig or s in ("+", "-") and s != strand for c, s, *_ in loci):
            return True
        return len(loci) > 1 and (len({source for *_, source in loci}) > 1
                                  or _apart([locus for locus in loci if locus[2] is not None]))

    def copies(self, transcript: str, located) -> list[tuple[str, str, tuple]]:
        """(contig, strand, exons) of each copy of an id at several places: its pieces by contig and
        strand, and by the line defining the copy that holds them where lines say (those outside every
        one, or of an id no line places, together, as UCSC's exon-only GTF of a gene on chrX and chrY)."""
        loci = self.defining(transcript)
        copies = defaultdict(set)
        for contig, strand, (start, end), _ in located:
            held = next(((a, b) for c, s, a, b, _ in sorted(loci, key=str) if (c, s) == (contig, strand)
                         and a is not None and a <= start and end <= b), None)
            copies[contig, strand, held].add((start, end))
        return [(contig, strand, tuple(_merge(pieces)))
                for (contig, strand, _), pieces in sorted(copies.items(), key=lambda copy: (*copy[0][:2], copy[0][2] or ()))]

    def gene_of(self, transcript: str, transcripts) -> str:
        """A transcript's Parent, or that Parent's own while it is one of `transcripts` (NCBI gives a
        miRNA its primary_transcript as Parent, and that the gene), but no higher (a gene's operon or
        locus is no gene); itself if it has none, or is a gene line itself (a prokaryote's, whose CDS it
        is the Parent of: its own Parent, an operon, is no gene)."""
        if (self.typed.get(transcript) or "").endswith("gene"):
            return transcript
        gene, seen = self.parent_of.get(transcript, transcript), {transcript}
        while gene in transcripts and gene in self.parent_of and gene not in seen:
            seen.add(gene)
            gene = self.parent_of[gene]
        return gene

    def processed(self, transcript: str) -> bool:
        """Whether its own biotype attribute, else its GFF3 type, is of _PROCESSED_KINDS (not its gene's:
        a primary miRNA transcript starts and ends where transcription does)."""
        return bool((self.own.get(transcript) or {self.typed.get(transcript)}) & _PROCESSED_KINDS)

    def biotypes(self, transcript: str, gene: str, has_cds: bool) -> frozenset[str]:
        """A transcript's biotypes: its GFF3 type, and its own biotype attribute where it has one
        (Ensembl's and GENCODE's: a protein-coding gene's retained intron or nonsense-mediated-decay
        transcript is no protein_coding one, whatever its gene says), else its gene's biotype (a gene's
        type, gene, says nothing of its transcripts, nor does RefSeq's gene line where CDS name it
        their parent), protein_coding only if it has a CDS (WormBase's nc_primary_transcript and
        RefSeq's XR transcripts of protein-coding genes have none). NCBI's GTF names the GFF3 type
        (mRNA, lnc_RNA) in transcript_biotype: its gene's biotype joins it."""
        typed = {self.typed[transcript]} if transcript in self.typed else set()
        # A gene's CDS of its own ID (see _Pieces.proteins_apart) takes its gene's biotypes, as its others do.
        typed -= {"gene", "CDS"} if transcript in self.parent_of else {"gene"}
        own = self.own.get(transcript, set())
        if self.sourced and not has_cds:  # some pipelines write protein_coding in column 2 of every line
            own = own - {"protein_coding"}
        if own and transcript not in self.ncbi:
            return frozenset(typed | own)
        inherited = self.of_gene.get(transcript, set()) | self.own.get(gene, set()) | self.of_gene.get(gene, set())
        return frozenset(typed | own | (inherited if has_cds else inherited - {"protein_coding"}))


def _gff_assembled(path: Path, pieces: _Pieces, features: _Features, circular: dict,
                   undefined: set) -> tuple[list, list]:
    """The transcripts of the exon, CDS, UTR and codon pieces read by their owners' ids (exons where a
    transcript has them, with any UTR outside them, as old WormBase GFF3 wrote coding exons only;
    else its CDS, start and stop codons and UTRs), less those left out: ids at several places (or, in
    GTF, of several genes; or defined by lines on another strand, apart or of two sources),
    transcripts across an origin, those whose exons may be incomplete (a Parent no line defines, CDS
    outside them, an intron past them, a piece on no strand, marked partial, of a gene Liftoff lifted
    over poorly or, in GTF, a piece of their gene that names no transcript), and those of a CDS marked
    pseudo. Those left out are returned too: the ids at several places copy by copy (see
    _Features.copies), those across an origin in two runs (see _around), and those on no strand at
    all on each strand."""
    parts = pieces.parts
    groups = {t: cds + parts["codon"].get(t, []) + parts["UTR"].get(t, []) for t, cds in parts["CDS"].items()}
    groups.update({t: exons + parts["UTR"].get(t, []) for t, exons in parts["exon"].items()})
    transcripts, repeated, incomplete, aside, across_origin = [], [], [], [], 0
    for transcript_id, located in groups.items():
        contigs_strands = {(c, s) for c, s, _, _ in located}
        genes = {g for _, _, _, g in located if g}  # a GTF line without gene_id names none
        gene = min(genes, default=None) or features.gene_of(transcript_id, groups)
        if len(contigs_strands) != 1 or len(genes) > 1 or features.misplaced(transcript_id, contigs_strands) \
                or pieces.renumbered(transcript_id) or {transcript_id, gene} & features.trans_spliced:
            repeated.append(transcript_id)
            # Their sites are real wherever their pieces lie: unlabelled, copy by copy.
            aside += [Transcript(transcript_id, gene, contig, strand, exons)
                      for contig, strand, exons in features.copies(transcript_id, located)]
            continue
        (contig, strand), = contigs_strands
        exons = tuple(sorted(_merge({interval for _, _, interval, _ in located})))
        coding = transcript_id not in parts["exon"] and transcript_id not in parts["UTR"]
        transcript = Transcript(transcript_id, gene, contig, strand, exons, coding, features.processed(transcript_id),
                                features.biotypes(transcript_id, gene, transcript_id in parts["CDS"]),
                                frozenset(features.tags.get(transcript_id, ())))
        if transcript_id in undefined or pieces.doubted(transcript_id, gene, coding) \
                or transcript_id in features.partial or {transcript_id, gene} & features.lifted_poorly \
                or _outside(parts["CDS"].get(transcript_id, ()), exons) \
                or _past_ends(parts["intron"].get(transcript_id, ()), exons):
            incomplete.append(transcript)
            continue
        runs = _around(exons, circular[contig]) if contig in circular else []
        if runs:
            across_origin += 1
            aside += [replace(transcript, exons=run) for run in runs]
            continue
        (aside if transcript_id in features.pseudo else transcripts).append(transcript)
    if repeated:
        # One id at two places (UCSC-derived GTFs repeat an id at each copy of a gene; trans-splicing)
        # would join them into one transcript with an intron between them that no annotation holds.
        log.warning("%s: %d transcript id(s) name exons at several places (contigs, strands, GTF genes, exon "
                    "numbers, lines defining them apart, of two sources or on another strand, or trans-spliced), left out: %s", path,
                    len(repeated), first_names(repeated))
    if incomplete:
        # A cut-out of a larger annotation keeps exons whose transcript line fell outside it, and some
        # of their exons may have gone with it: their first and last bases are no TSS or TTS.
        log.warning("%s: %d transcript(s) whose exons may be incomplete (a Parent no line defines, CDS outside the "
                    "exons, an intron past them, a line on no strand, marked partial, or a GTF line of their gene "
                    "without a transcript_id), left out: %s", path, len(incomplete), first_names([t.id for t in incomplete]))
    if across_origin:
        log.warning("%s: %d transcript(s) across the origin of a circular sequence left out", path, across_origin)
    # A transcript on no strand at all (StringTie's of one exon): its ends are real on one strand or the other.
    aside += [Transcript(transcript_id, features.gene_of(transcript_id, groups), contig, strand,
                         tuple(_merge({i for c, i in located if c == contig})))
              for transcript_id, located in pieces.unstranded_exons.items() if transcript_id not in groups
              for contig in sorted({c for c, _ in located}) for strand in "+-"]
    # A pseudogene line no piece names (RefSeq's bacterial ones): its ends may be a TSS and a TTS.
    named = {name for t in transcripts + incomplete + aside for name in (t.id, t.gene)}
    aside += pieces.genes_of_no_transcript(path, named)
    aside += [Transcript(gene, gene, contig, strand, (interval,))
              for gene, (contig, strand, interval) in features.pseudogenes.items() if gene not in named]
    if not transcripts:
        raise UserError(f"{path}: no transcripts found (every one left out, as said above)")
    transcripts.sort(key=lambda t: (t.contig, t.start, t.id))
    return transcripts, incomplete + aside


def _attribute_reader(attributes: str):
    """The GTF or the GFF3 attribute reader by the column's form, or None where it has no key-value pairs:
    GTF's first pair is a key, a space and a value, where an '=' may stand only inside quotes."""
    if _GTF_ATTRIBUTE.match(attributes) and "=" not in re.split("[\"']", attributes.split(";")[0])[0]:
        return _gtf_attributes
    return _gff3_attributes if "=" in attributes else None


def _outside(cds, exons) -> bool:
    """Whether a CDS piece lies outside a transcript's (merged) exons."""
    return any(not any(start <= a and b <= end for start, end in exons) for _, _, (a, b), _ in cds)


def _around(exons, length: int) -> list[tuple]:
    """A transcript's exons across the origin of a circular sequence of `length`, as two runs on it:
    those before the origin and those after (where written past the end, or at both of its ends, split
    at the widest gap); none if it is not across. Their sites are real, their ends at the origin not:
    what it holds, set aside."""
    if exons[-1][1] > length:  # written past the sequence's end
        before = [(a, min(b, length)) for a, b in exons if a < length]
        after = [(max(a, length) - length, b - length) for a, b in exons if b > length]
    elif len(exons) > 1 and exons[0][0] == 0 and exons[-1][1] == length:  # as pieces at both of its ends
        cut = max(range(1, len(exons)), key=lambda i: exons[i][0] - exons[i - 1][1])
        after, before = exons[:cut], exons[cut:]
    else:
        return []
    return [tuple(part) for part in (before, after) if part]


def _past_ends(introns, exons) -> bool:
    """Whether an intron piece reaches past a transcript's first or last (merged) exon."""
    return any(a < exons[0][0] or b > exons[-1][1] for _, _, (a, b), _ in introns)


def _apart(loci) -> bool:
    """Whether transcript lines of one id lie on different contigs or strands, or do not overlap."""
    loci = sorted(loci)
    end = loci[0][3] if loci else 0
    for locus in loci[1:]:
        if locus[:2] != loci[0][:2] or locus[2] >= end:
            return True
        end = max(end, locus[3])
    return False


def _merge(intervals) -> list[tuple[int, int]]:
    """Union of overlapping or touching intervals (CDS pieces split by a frameshift, for example)."""
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged

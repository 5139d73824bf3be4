"""Scoring scan calls against an annotation: each call's peak is matched to the annotated sites its
label stands for, on its strand, within the tolerance of that kind of site (the task registry says
which sites and which tolerance: --splice-tolerance, --tss-tolerance, …); precision is the share of
calls that match a site, recall the share of sites that a call matches."""

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..options import add_settings, settings_from, settings_with
from ..outputs import atomic_output, check_outputs
from ..sequences import read_annotation, read_bed_regions
from ..settings import ScanEvalSettings
from ..tasks.registry import SITE_LABELS, TOLERANCES
from .calls import read_calls
from .plan import RegionIndex

def _sites(annotation, kinds: set[str]) -> dict[tuple[str, str, str], np.ndarray]:
    """(kind, contig, strand) → sorted site positions."""
    found = defaultdict(list)
    for s in annotation.sites(kinds):
        found[(s.kind, s.contig, s.strand)].append(s.position)
    return {key: np.array(sorted(v), dtype=np.int64) for key, v in found.items()}


def _near(positions: np.ndarray, targets: np.ndarray, tolerance: int) -> np.ndarray:
    """For each of `positions`, whether some target lies within ±tolerance."""
    if not len(targets):
        return np.zeros(len(positions), dtype=bool)
    i = np.searchsorted(targets, positions - tolerance)
    return (i < len(targets)) & (targets[np.minimum(i, len(targets) - 1)] <= positions + tolerance)


def evaluate_calls(calls_path, annotation_path, *, summary=None, settings=None, **overrides) -> dict:
    """Precision, recall and F1 per label (and over all), as a dict ready for JSON. Only calls (by
    their peak) and annotated sites inside the settings' `regions` (BED) or `contigs`, or the regions
    the scan's `summary` names, count. The labels are those the scan called (from its summary), else
    those in the calls. Settings: a ScanEvalSettings, or its fields as keywords."""
    s = settings_with(ScanEvalSettings, settings, overrides)
    calls = read_calls(calls_path)
    scanned = _read_summary(summary) if summary is not None else None
    labels = list(scanned["called"]) if scanned else sorted({c.label for c in calls})
    unknown = sorted((set(labels) | {c.label for c in calls}) - set(SITE_LABELS))
    if unknown:
        raise UserError(f"{summary or calls_path}: labels {', '.join(unknown)} have no annotated counterpart "
                        f"(known: {', '.join(SITE_LABELS)})")
    annotation = read_annotation(annotation_path, s.min_intron)
    _check_same_genome(annotation, calls, scanned)
    inside = None
    if s.regions is not None:
        inside = read_bed_regions(s.regions)
    elif s.contigs:
        inside = [(c, 0, 2**62) for c in s.contigs]
    elif scanned is not None:
        inside = [tuple(r) for r in scanned["regions"]]
    sites = _sites(annotation, {SITE_LABELS[label].site for label in labels})
    if inside is not None:
        inside = RegionIndex(inside)
        sites = {key: positions[inside.holds(key[1], positions)] for key, positions in sites.items()}
    tolerances = {f"{name}_tolerance": getattr(s, f"{name}_tolerance") for name in TOLERANCES}
    report = {"calls": str(calls_path), "annotation": str(annotation_path), **tolerances, "labels": {}}
    totals = np.zeros(4, dtype=np.int64)  # calls, matched calls, sites, matched sites
    for label in labels:
        kind = SITE_LABELS[label].site
        tolerance = tolerances[f"{SITE_LABELS[label].tolerance}_tolerance"]
        peaks = defaultdict(list)
        for c in calls:
            if c.label == label:
                peaks[(c.contig, c.strand)].append(c.peak)
        peaks = {key: np.sort(np.array(p, dtype=np.int64)) for key, p in peaks.items()}
        if inside is not None:
            peaks = {key: p[inside.holds(key[0], p)] for key, p in peaks.items()}
        counts = np.zeros(4, dtype=np.int64)
        for (contig, strand), positions in peaks.items():
            counts[0] += len(positions)
            counts[1] += _near(positions, sites.get((kind, contig, strand), np.array([], dtype=np.int64)),
                               tolerance).sum()
        for (k, contig, strand), positions in sites.items():
            if k == kind:
                counts[2] += len(positions)
                counts[3] += _near(positions, peaks.get((contig, strand), np.array([], dtype=np.int64)),
                                   tolerance).sum()
        report["labels"][label] = _metrics(counts)
        totals += counts
    report["overall"] = _metrics(totals)
    return report


def _metrics(counts) -> dict:
    """Precision, recall and F1 of the counts; one without calls or without sites is undefined (null,
    with the reason), not 0."""
    calls, hits, sites, found = (int(x) for x in counts)
    undefined = {}
    if not calls:
        undefined["precision"] = "no calls"
    if not sites:
        undefined["recall"] = "no annotated sites where the scan looked"
    precision = hits / calls if calls else None
    recall = found / sites if sites else None
    f1 = None
    if undefined:
        undefined["f1"] = " and ".join(undefined.values())
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    result = {"calls": calls, "calls_matching_a_site": hits, "sites": sites, "sites_found": found,
              **{k: None if v is None else round(v, 4) for k, v in (("precision", precision), ("recall", recall),
                                                                     ("f1", f1))}}
    return result | ({"undefined": undefined} if undefined else {})


def _read_summary(summary) -> dict:
    """A gathered scan's summary: the labels it called, the regions it scanned, its genome's contigs."""
    try:
        scanned = json.loads(Path(summary).read_text())
        whole = all(isinstance(scanned[key], list) for key in ("called", "regions"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        whole = False
    if not whole:
        raise UserError(f"{summary}: not a summary written by `dnabert2 scan --summary`")
    if scanned.get("chunk", [0, 1])[1] > 1:
        raise UserError(f"{summary}: the summary of one chunk of a scan; evaluate the gathered calls "
                        "with the summary `dnabert2 scan-gather` writes")
    return scanned


def _check_same_genome(annotation, calls, scanned) -> None:
    """Refuse an annotation of another genome, which would score every call a miss: one on contigs the
    scanned genome lacks or past their ends (checked against the summary's contig lengths), or, without
    a summary, one sharing no contig with the calls."""
    if scanned is not None and scanned.get("contig_lengths"):
        annotation.check_contigs(scanned["contig_lengths"], f"the scanned genome ({scanned.get('input')})")
        return
    if scanned is not None:
        genome = set(scanned.get("contigs") or [contig for contig, _, _ in scanned["regions"]])
    else:
        genome = {c.contig for c in calls}
    if genome and not annotation.contigs & genome:
        shown = ", ".join(sorted(genome)[:4]) + (", …" if len(genome) > 4 else "")
        raise UserError(f"{annotation.path}: shares no contig with the scanned genome ({shown}); it annotates "
                        "another genome")


def add_arguments(parser) -> None:
    matching = "; ".join(f"{label.name}: {label.site} sites within --{label.tolerance}-tolerance bp"
                         for label in SITE_LABELS.values())
    parser.description = (
        f"Match each call's peak to the annotated sites of its label on the same strand ({matching}). Calls and "
        "sites outside --regions/--contigs (or the scan's regions, given --summary) are left out. Prints (and with "
        "--out writes) JSON: per label and overall, calls, sites, precision, recall and F1.")
    parser.add_argument("--calls", required=True, type=Path, help="calls from `dnabert2 scan`")
    parser.add_argument("--annotation", required=True, type=Path, metavar="GTF|GFF3|GBK", help="gene annotation")
    parser.add_argument("--out", type=Path, help="JSON report")
    parser.add_argument("--summary", type=Path, help="the scan's summary (`scan --summary`): the labels it called and "
                        "the regions it scanned, so labels without calls count and sites outside the scan do not")
    add_settings(parser, ScanEvalSettings)


def run(args) -> None:
    check_outputs([args.out], [args.calls, args.annotation, args.summary])
    report = evaluate_calls(args.calls, args.annotation, summary=args.summary,
                            settings=settings_from(args, ScanEvalSettings))
    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        with atomic_output(args.out) as tmp:
            Path(tmp).write_text(text)
    print(text, end="")

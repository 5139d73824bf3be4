"""Scoring a scan against an annotation. Calls' peaks are matched one to one to the annotated sites
their label stands for, on their strand, within the tolerance of that kind of site (the task registry
says which sites and which tolerance: --splice-tolerance, --tss-tolerance, …), as many pairs as can
be; precision is the share of calls matched, recall the share of sites matched: a second call near
one site is a false positive, and one call does not find two sites. From the scan's score tracks, per
base: PR-AUC and top-k accuracy (bases/metrics.py), and the mean score around annotated sites."""

import hashlib
import json
import logging
from collections import defaultdict
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter1d

from ..bases.metrics import SiteCounts, as_scores
from ..bed import bed_header
from ..bedgraph import bedgraph_table
from ..errors import UserError, first_names
from ..options import add_settings, changed, named_paths, output_file, settings_from, settings_with
from ..outputs import atomic_text, check_outputs
from ..sequences import RegionIndex, merge_regions, read_annotation, read_bed_regions
from ..settings import MIN_INTRON, ScanEvalSettings
from ..tasks.description import read_description
from ..tasks.registry import KINDS, SITE_LABELS, TOLERANCES, no_introns
from .calls import check_counts, read_calls
from .gather import read_json

METAPLOT = 200  # bp either side of a site the metaplot reaches
PIECE = 5_000_000  # bp of a track read at a time
CLOSE_PAIR = 400  # bp: sites this close share a window of a window scan, which cannot tell them apart
# bp, beyond any genome's (axolotl's longest chromosome is about 3 × 10^9): a tolerance past it reaches
# as it does, and positions ± more would overflow int64.
LONGEST_CONTIG = 2**40

log = logging.getLogger(__name__)


def _positions(sites) -> dict[tuple[str, str, str], np.ndarray]:
    """(kind, contig, strand) → sorted site positions."""
    found = defaultdict(list)
    for s in sites:
        found[(s.kind, s.contig, s.strand)].append(s.position)
    return {key: np.array(sorted(v), dtype=np.int64) for key, v in found.items()}


def _near(positions: np.ndarray, sites: np.ndarray, tolerance: int) -> np.ndarray:
    """Which of the positions lie within ±tolerance of one of the sites (sorted)."""
    if not len(sites):
        return np.zeros(len(positions), dtype=bool)
    i = np.searchsorted(sites, positions - tolerance)
    return (i < len(sites)) & (sites[np.minimum(i, len(sites) - 1)] <= positions + tolerance)


def _matched(calls: np.ndarray, sites: np.ndarray, tolerance: int) -> int:
    """The most (call, site) pairs within ±tolerance of each other that share no call and no site,
    both sorted. On a line, pairing each site with the first call left that reaches it is optimal."""
    pairs = i = j = 0
    while i < len(calls) and j < len(sites):
        if calls[i] < sites[j] - tolerance:
            i += 1  # too far left for this site, and so for every later one
        elif calls[i] > sites[j] + tolerance:
            j += 1  # no call left reaches this site
        else:
            pairs, i, j = pairs + 1, i + 1, j + 1
    return pairs


def evaluate_calls(calls_path, annotation_path, *, summary=None, held_out=None, settings=None, **overrides) -> dict:
    """Precision, recall and F1 per label (and over all), as a dict ready for JSON; with the scan's
    `summary`, where it wrote score tracks, also per-base PR-AUC, top-k accuracy and the mean score
    around annotated sites. Only calls (by their peak), sites and bases inside the scanned regions
    (from the summary) and inside the settings' `regions` (BED) or `contigs`, or the test split of the
    task folder `held_out`, count. The labels are those the scan called (from its summary), else
    those in the calls. Settings: a ScanEvalSettings, or its fields as keywords."""
    s = settings_with(ScanEvalSettings, settings, overrides)
    calls = read_calls(calls_path)
    scanned = _read_summary(summary) if summary is not None else None
    if scanned is not None and "calls" in scanned:  # another scan's calls would be scored on this one's tracks
        check_counts(calls, calls_path, summary, scanned["calls"],
                     f"give that scan's calls ({scanned.get('calls_file')}), or no --summary")
    labels = list(scanned["called"]) if scanned else sorted({c.label for c in calls})
    if not labels:
        raise UserError(f"{calls_path}: no calls, so no label to evaluate; give the scan's --summary (the labels it "
                        "called)")
    unknown = sorted((set(labels) | {c.label for c in calls}) - set(SITE_LABELS))
    if unknown:
        raise UserError(f"{summary or calls_path}: labels {', '.join(unknown)} have no annotated counterpart "
                        f"(known: {', '.join(SITE_LABELS)})")
    tolerances = _tolerances(s, labels)
    if held_out is not None:
        _warn_other_kind(held_out, labels)
    biotypes, tags, min_intron = _transcripts_taken(s, held_out, labels)
    annotation = read_annotation(annotation_path, min_intron or MIN_INTRON, biotypes, tags)
    _check_same_genome(annotation, calls, calls_path, scanned)
    # A contig named wrong (chrI for I) would evaluate nothing, in nulls.
    known = annotation.annotated_contigs | {c.contig for c in calls} | set((scanned or {}).get("contig_lengths") or ())
    has = f"it has {', '.join(sorted(known)[:5])}{', …' if len(known) > 5 else ''}"
    unknown = [c for c in s.contigs if c not in known] if s.contigs and s.regions is None else []
    if unknown:
        raise UserError(f"--contigs {' '.join(unknown)}: in neither the calls, the annotation nor the scanned genome "
                        f"({has})")
    regions, scope = _evaluated_regions(scanned, s, held_out)
    if s.regions is not None and not {c for c, _, _ in regions} & known:
        raise UserError(f"--regions {s.regions}: none of its contigs is in the calls, the annotation or the scanned "
                        f"genome ({has})")
    unannotated = _unannotated(annotation, regions, calls)
    kinds = list(dict.fromkeys(SITE_LABELS[label].site for label in labels))
    inside = RegionIndex(regions) if regions is not None else None
    required = annotation.sites_required(kinds)
    sites, unlabelled = (_where_scanned(_positions(found), scanned, inside)
                         for found in (required, annotation.unlabelled(kinds)))
    if scanned is None and not (s.contigs or s.regions):  # --held-out says what counts, not where the scan looked
        _say_uncalled(calls, sites, calls_path)
    report = {"calls": str(calls_path), "annotation": str(annotation_path), "biotypes": biotypes, "tags": tags,
              "min_intron": min_intron, **tolerances, **({"held_out": str(held_out)} if held_out else {}),
              "scope": scope, "unannotated_contigs": unannotated, "labels": {}}
    totals = np.zeros(4, dtype=np.int64)  # calls, matched calls, sites, matched sites
    set_aside = 0
    for label in labels:
        kind = SITE_LABELS[label].site
        tolerance = _reach(tolerances, label)
        peaks = defaultdict(list)
        for c in calls:
            if c.label == label:
                peaks[(c.contig, c.strand)].append(c.peak)
        peaks = {key: np.sort(np.array(p, dtype=np.int64)) for key, p in peaks.items()}
        if inside is not None:
            peaks = {key: p[inside.holds(key[0], p)] for key, p in peaks.items()}
        peaks, aside = _set_aside(peaks, sites, unlabelled, kind, tolerance)
        counts = np.zeros(4, dtype=np.int64)
        pairs = np.zeros(2, dtype=np.int64)  # close pairs, resolved ones
        counts[0] = sum(len(positions) for positions in peaks.values())
        for (k, contig, strand), positions in sites.items():
            if k == kind:
                called = peaks.get((contig, strand), np.array([], dtype=np.int64))
                counts[2] += len(positions)
                counts[[1, 3]] += _matched(called, positions, tolerance)
                pairs += _close_pairs(positions, called, tolerance)
        report["labels"][label] = _metrics(counts) | {"close_pairs": int(pairs[0]),
                                                      "close_pairs_resolved": int(pairs[1]), "calls_unlabelled": aside,
                                                      "sites_sha256": _digest(required, kind)}
        totals += counts
        set_aside += aside
    report["overall"] = _metrics(totals) | {"calls_unlabelled": set_aside}
    if scanned is not None:
        _score_tracks(report, scanned, Path(summary), labels, (sites, unlabelled), regions, tolerances)
    return report


def _digest(sites, kind: str) -> str:
    """What identifies the annotated sites of a kind, wherever a scan looked: reports with other digests
    read another annotation (its content, not its file: gzip or not), genome, or transcripts' choice."""
    found = sorted((s.contig, s.strand, s.position) for s in sites if s.kind == kind)
    return hashlib.sha256(json.dumps(found).encode()).hexdigest()


def _warn_other_kind(held_out, labels: list[str]) -> None:
    """A task of other sites (a TSS task's split for splice calls) still limits where sites count, and
    passes on its transcripts' choice, but is seldom what was meant."""
    with _task_json(held_out) as task:
        kind = KINDS.get(task.get("task"))
    if kind is not None and not set(labels) & set(kind.labels):
        log.warning("--held-out %s is a %s task (%s); the calls evaluated are %s: only its test split and its "
                    "transcripts' choice apply", held_out, kind.name, ", ".join(kind.labels[1:]), ", ".join(labels))


def _transcripts_taken(s, held_out, labels: list[str]) -> tuple:
    """The biotypes, tags and --min-intron that choose the sites: a model trained on some transcripts'
    sites (of some biotypes, with some tags, and of gaps the task took for introns) is scored on
    theirs, unless told otherwise. --min-intron only of splice sites (None for others)."""
    trained_on = held_out_transcripts(held_out) if held_out is not None else {}
    biotypes, tags = s.biotypes or trained_on.get("biotypes"), s.tags or trained_on.get("tags")
    if not any(SITE_LABELS[label].splice for label in labels):
        if s.min_intron is not None:
            raise no_introns(f"an evaluation of {', '.join(labels)} calls")
        return biotypes, tags, None
    min_intron = s.min_intron or trained_on.get("min_intron") or MIN_INTRON
    if s.min_intron is None and trained_on.get("min_intron"):
        log.info("--held-out %s: introns of %d bp or more, as the task took them (--min-intron to choose)", held_out,
                 min_intron)
    return biotypes, tags, min_intron


def _reach(tolerances: dict[str, int], label: str) -> int:
    """The label's tolerance as positions are compared with it: at most LONGEST_CONTIG."""
    return min(tolerances[f"{SITE_LABELS[label].tolerance}_tolerance"], LONGEST_CONTIG)


def _tolerances(s, labels: list[str]) -> dict[str, int]:
    """The tolerance of each kind of site matching the labels are evaluated with; one given for no
    label here would change nothing, unsaid (--tss-tolerance on a splice scan)."""
    used = dict.fromkeys(SITE_LABELS[label].tolerance for label in labels)
    if unused := changed(s, [f"{name}_tolerance" for name in TOLERANCES if name not in used]):
        raise UserError(f"{' '.join(unused)}: no label evaluated here ({', '.join(labels)}) is matched with it")
    return {f"{name}_tolerance": getattr(s, f"{name}_tolerance") for name in used}


def _unannotated(annotation, regions, calls) -> list[str]:
    """The evaluated contigs without an annotated transcript, warned of: their calls and bases all count
    as false, right for a contig without genes, not for one an annotation of some chromosomes left out,
    which only the user can tell apart."""
    evaluated = dict.fromkeys(c for c, _, _ in regions) if regions is not None else dict.fromkeys(c.contig for c in calls)
    unannotated = [c for c in evaluated if c not in annotation.annotated_contigs]
    if unannotated:
        log.warning("%s: no transcript on %d evaluated contig(s) (%s%s): every call and base there counts as false "
                    "(--contigs or --regions to leave them out)", annotation.path, len(unannotated),
                    ", ".join(unannotated[:5]), ", …" if len(unannotated) > 5 else "")
    return unannotated


def _where_scanned(sites: dict, scanned, inside) -> dict:
    """The sites on the strands scanned, inside the evaluated regions."""
    if scanned is not None and scanned.get("strands", "both") != "both":  # the other strand was not looked at
        sites = {key: positions for key, positions in sites.items() if key[2] == scanned["strands"]}
    if inside is not None:
        sites = {key: positions[inside.holds(key[1], positions)] for key, positions in sites.items()}
    return sites


def _set_aside(peaks: dict, sites: dict, unlabelled: dict, kind: str, tolerance: int) -> tuple[dict, int]:
    """The peaks less those at unlabelled sites (within the tolerance of one, and of no annotated site):
    a call there is neither right nor wrong. Returns them and how many were set aside."""
    empty, kept, aside = np.array([], dtype=np.int64), {}, 0
    for (contig, strand), positions in peaks.items():
        away = ~_near(positions, unlabelled.get((kind, contig, strand), empty), tolerance) \
            | _near(positions, sites.get((kind, contig, strand), empty), tolerance)
        kept[(contig, strand)], aside = positions[away], aside + int((~away).sum())
    return kept, aside


def _close_pairs(sites: np.ndarray, calls: np.ndarray, tolerance: int) -> tuple[int, int]:
    """Neighbouring sites closer than a window (CLOSE_PAIR bp), and how many of those pairs two
    different calls find, each within the tolerance of its own site."""
    close = np.flatnonzero(np.diff(sites) < CLOSE_PAIR)
    resolved = 0
    for i in close:
        a, b = sites[i], sites[i + 1]
        near_a = calls[np.abs(calls - a) <= tolerance]
        near_b = calls[np.abs(calls - b) <= tolerance]
        resolved += bool(len(near_a) and len(near_b) and len(np.union1d(near_a, near_b)) >= 2)
    return len(close), resolved


def _evaluated_regions(scanned, s, held_out) -> tuple[list | None, str]:
    """Where sites count: the scanned regions, within the given regions or contigs and within the
    held-out split, merged so that no base counts twice; and those limits in words (the scope)."""
    limits = {}
    if s.regions is not None:
        limits[f"--regions {s.regions}"] = read_bed_regions(s.regions)
    elif s.contigs:
        limits[f"--contigs {' '.join(s.contigs)}"] = [(c, 0, 2**62) for c in s.contigs]
    if held_out is not None:
        limits[f"the test split of {held_out}"] = held_out_regions(held_out)
    if scanned is not None:
        limits["the scanned regions"] = [tuple(r) for r in scanned["regions"]]
    scope = " and ".join(name for name in limits if name != "the scanned regions") or \
        ("the whole scan" if scanned is not None else "the whole annotation")
    if not limits:
        return None, scope
    regions, *others = limits.values()
    for other in others:
        regions = intersect(regions, other)
    if not regions:  # an evaluation of nothing would report only nulls, and pass
        raise UserError(f"nothing to evaluate: {' and '.join(limits)} share no base" if len(limits) > 1
                        else f"nothing to evaluate: no region in {next(iter(limits))}")
    return merge_regions(regions, {c: i for i, c in enumerate(dict.fromkeys(c for c, _, _ in regions))}), scope


def held_out_regions(task_folder) -> list[tuple[str, int, int]]:
    """The test split of a task folder: its contigs, or its stretches of contigs."""
    with _task_json(task_folder) as task:
        if task.get("split") == "positions":
            return [tuple(r) for r in task["regions"]["test"]]
        return [(c, 0, 2**62) for c in task["contigs"]["test"]]


def held_out_transcripts(task_folder) -> dict:
    """The biotypes and tags of the transcripts a task was built from (tasks --biotype, --tag), each
    None for every transcript, and its --min-intron (None where task.json predates it)."""
    with _task_json(task_folder) as task:
        chosen = {key: task.get(key) for key in ("biotypes", "tags")}
        if not all(v is None or isinstance(v, list) and all(isinstance(x, str) for x in v) for v in chosen.values()):
            raise TypeError
        min_intron = task.get("min_intron")
        if min_intron is not None and (not isinstance(min_intron, int) or min_intron < 1):
            raise TypeError
        return chosen | {"min_intron": min_intron}


@contextmanager
def _task_json(task_folder):
    """A task folder's task.json, read; what it lacks or holds amiss is one UserError."""
    described = Path(task_folder) / "task.json"
    if not described.is_file():
        raise UserError(f"{described}: no such file (--held-out takes the folder `dnabert2 tasks` wrote)")
    try:
        yield read_description(task_folder)
    except (KeyError, TypeError, AttributeError):
        raise UserError(f"{described}: not the task.json of a task built by `dnabert2 tasks`") from None


def intersect(a, b) -> list[tuple[str, int, int]]:
    """The bases in both sets of regions, as regions."""
    by_contig = defaultdict(list)
    for contig, start, end in b:
        by_contig[contig].append((start, end))
    return [(contig, max(start, s2), min(end, e2)) for contig, start, end in a for s2, e2 in by_contig[contig]
            if max(start, s2) < min(end, e2)]


def _score_tracks(report, scanned, summary: Path, labels, sites_and_unlabelled, regions, tolerances) -> None:
    """Per-base PR-AUC and top-k accuracy of each label from the scan's tracks (a site's score is the
    best within its label's tolerance; the bases near unlabelled sites of any label evaluated count
    neither way, as a dense task leaves them out of training and its test figures), and the metaplot:
    the mean score at each offset from annotated sites, on their strand, 5'→3'."""
    sites, unlabelled = sites_and_unlabelled
    empty = np.array([], dtype=np.int64)
    tracks = open_tracks(scanned, summary)
    if tracks is None:
        for label in labels:
            _no_track_metrics(report["labels"][label], "the scan wrote no score tracks (--bigwig or --bedgraph)")
        return
    strands = {"both": "+-"}.get(scanned.get("strands", "both"), scanned.get("strands"))
    report["metaplot"] = {"offsets": [-METAPLOT, METAPLOT]}
    kinds = {SITE_LABELS[label].site for label in labels}
    aside_at = {}  # (contig, strand) -> the unlabelled sites of every label evaluated
    for (kind, contig, strand), positions in unlabelled.items():
        if kind in kinds:
            aside_at[(contig, strand)] = np.concatenate([aside_at.get((contig, strand), empty), positions])
    for label in labels:
        kind = SITE_LABELS[label].site
        tolerance = _reach(tolerances, label)
        counts, around, seen = SiteCounts(), np.zeros(2 * METAPLOT + 1, np.int64), np.zeros(2 * METAPLOT + 1, np.int64)
        margin, unscored = max(tolerance, METAPLOT), 0
        for contig, region_start, region_end in regions:
            # In pieces, each read with a margin inside the region, so memory stays flat on long contigs.
            for start in range(region_start, region_end, PIECE):
                end = min(start + PIECE, region_end)
                lo, hi = max(region_start, start - margin), min(region_end, end + margin)
                for strand in strands:
                    values = tracks(label, strand, contig, lo, hi)
                    scores = np.where(np.isnan(values), UNSCORED, as_scores(np.nan_to_num(values)))
                    here = sites.get((kind, contig, strand), empty)
                    aside = aside_at.get((contig, strand), empty)
                    unscored += _count_bases(counts, scores, here - lo, start - lo, end - lo, tolerance, aside - lo)
                    _metaplot(around, seen, scores, here[(here >= start) & (here < end)] - lo, strand)
        scored = counts.metrics()
        del scored["sites"]  # the sites scored; "sites" is every annotated site, as the calls are matched to
        report["labels"][label] |= scored | {"sites_unscored": unscored}
        if scored["pr_auc"] is None:
            _no_track_metrics(report["labels"][label], "no annotated site with a scored base where the scan looked")
        # An offset at which no site has a scored base has no mean (null), not a mean of 0.
        report["metaplot"][label] = [round(float(a / (1000 * n)), 4) if n else None for a, n in zip(around, seen)]


def _no_track_metrics(entry: dict, reason: str) -> None:
    entry |= {"pr_auc": None, "top_k_accuracy": None}
    entry["undefined"] = entry.get("undefined", {}) | {"pr_auc": reason, "top_k_accuracy": reason}


UNSCORED = -1  # a base the scan gave no score (N skipped, a window scan's contig ends)


def _count_bases(counts: SiteCounts, scores: np.ndarray, sites: np.ndarray, start: int, end: int,
                 tolerance: int, unlabelled: np.ndarray) -> int:
    """Count the bases start..end-1 of a piece of track: each site with the best score within the
    tolerance of it, and as others only the bases farther than that from every site and unlabelled
    site (a base a few bp from a TSS is neither a miss nor a false alarm). Bases without a score count
    neither way, nor do sites without one within the tolerance: returns how many sites those were."""
    inside = sites[(sites >= start) & (sites < end)]
    # Each site opens its span of ±tolerance and closes it after: a base is near one where any is open
    # (one pass, whatever the tolerance; a loop over offsets took minutes at 10^6).
    marks, edges = np.concatenate([sites, unlabelled]), np.zeros(len(scores) + 1, dtype=np.int64)
    np.add.at(edges, np.clip(marks - tolerance, 0, len(scores)), 1)
    np.add.at(edges, np.clip(marks + tolerance + 1, 0, len(scores)), -1)
    near = np.cumsum(edges[:-1]) > 0
    # A reach past the piece's length sees all of it, as that length does (the filter holds its width in memory).
    reach = min(tolerance, len(scores))
    best = maximum_filter1d(scores, 2 * reach + 1, mode="constant", cval=UNSCORED) if reach else scores
    site_scores = best[inside]
    others = scores[start:end][~near[start:end]]
    site_scores, others = site_scores[site_scores != UNSCORED], others[others != UNSCORED]
    counts.add(np.concatenate([site_scores, others]),
               np.concatenate([np.ones(len(site_scores), dtype=bool), np.zeros(len(others), dtype=bool)]))
    return len(inside) - len(site_scores)


def _metaplot(around, seen, scores, sites, strand) -> None:
    """Add the scores around each site (offsets into scores; UNSCORED where there is none) to the sums,
    oriented 5'→3'. The sums are of whole thousandths, as the tracks hold them: bigWig's float32 and
    bedGraph's decimal text then give one mean."""
    for offset in sites:
        lo, hi = max(0, offset - METAPLOT), min(len(scores), offset + METAPLOT + 1)
        place = np.arange(lo - offset, hi - offset) * (1 if strand == "+" else -1) + METAPLOT
        scored = scores[lo:hi] != UNSCORED
        around[place[scored]] += scores[lo:hi][scored]
        seen[place[scored]] += 1


def open_tracks(scanned: dict, summary: Path):
    """A reader of the scan's tracks: (label, strand, contig, start, end) → values (NaN where there is
    none); from its bigWig folder, else its bedGraph folder; None if it wrote neither. Each file is
    checked, when first read, to be one the scan wrote."""
    from .tracks import check_track, file_name

    kind = "bigwig" if scanned.get("bigwig_dir") else "bedgraph" if scanned.get("bedgraph_dir") else None
    if kind is None:
        return None
    bedgraphs = {}

    def read(label, strand, contig, start, end):
        path = summary.parent / scanned[f"{kind}_dir"] / file_name(label, strand, kind)
        if path not in bedgraphs:
            if not path.is_file():
                raise UserError(f"{path}: missing from the scan's {'bigWig' if kind == 'bigwig' else 'bedGraph'} "
                                "folder")
            check_track(path, scanned, kind, summary)
            bedgraphs[path] = read_bedgraph(path) if kind == "bedgraph" else None
        values = _bigwig_values(path, contig, start, end) if kind == "bigwig" else \
            _bedgraph_values(bedgraphs[path], contig, start, end)
        scored = values[~np.isnan(values)]
        if ((scored < 0) | (scored > 1)).any():
            raise UserError(f"{path}: holds values outside 0-1, not a scan's probabilities")
        return values
    return read


def _bigwig_values(path: Path, contig: str, start: int, end: int) -> np.ndarray:
    import pyBigWig

    try:
        bigwig = pyBigWig.open(str(path))
    except RuntimeError:
        raise UserError(f"{path}: not a bigWig file that pyBigWig can read") from None
    with closing(bigwig):
        if contig not in bigwig.chroms():
            return np.full(end - start, np.nan)
        return bigwig.values(contig, start, end, numpy=True)


def _bedgraph_values(track: dict, contig: str, start: int, end: int) -> np.ndarray:
    if contig not in track:
        return np.full(end - start, np.nan)
    starts, ends, values = track[contig]
    positions = np.arange(start, end)
    row = np.searchsorted(starts, positions, side="right") - 1
    covered = (row >= 0) & (positions < ends[np.maximum(row, 0)])
    return np.where(covered, values[np.maximum(row, 0)], np.nan)


def read_bedgraph(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A bedGraph's rows by contig: sorted starts, ends and values."""
    import pandas as pd

    try:
        table = bedgraph_table(path, len(bed_header(path)[0]))
    except (ValueError, pd.errors.ParserError) as error:
        raise UserError(f"{path}: not a bedGraph (contig, start, end, value): {str(error).splitlines()[0]}") from None
    found = {}
    for contig, rows in table.groupby("contig", sort=False):
        rows = rows.sort_values("start")
        found[contig] = tuple(rows[c].to_numpy() for c in ("start", "end", "value"))
    return found


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


def _say_uncalled(calls, sites, calls_path) -> None:
    """Warn of the contigs with sites and no call, where nothing says where the scan looked: a scan of
    some contigs would read as one that missed every site of the others."""
    annotated = {contig for _, contig, _ in sites}
    uncalled = sorted(annotated - {c.contig for c in calls})
    if uncalled:
        log.warning("%s: no call on %d of the %d contigs with annotated sites (%s): their sites count as missed; "
                    "give the scan's --summary (where it looked), or --contigs", calls_path, len(uncalled),
                    len(annotated), first_names(uncalled))


def _read_summary(summary) -> dict:
    """A gathered scan's summary: the labels it called, the regions it scanned, its genome's contigs."""
    try:
        scanned = read_json(summary)
        whole = all(isinstance(scanned[key], list) for key in ("called", "regions"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        whole = False
    if not whole:
        raise UserError(f"{summary}: not a summary written by `dnabert2 scan --summary`")
    if scanned.get("chunk", [0, 1])[1] > 1:
        raise UserError(f"{summary}: the summary of one chunk of a scan; evaluate the gathered calls "
                        "with the summary `dnabert2 scan-gather` writes")
    return scanned


def _check_same_genome(annotation, calls, calls_path, scanned) -> None:
    """Refuse an annotation of another genome, which would score every call a miss: one on contigs the
    scanned genome lacks or past their ends (checked against the summary's contig lengths), or, without
    a summary, one sharing no contig with the calls."""
    if scanned is not None and scanned.get("contig_lengths"):
        genome = f"the scanned genome ({scanned.get('input')})"
        annotation.keep_genome_contigs(scanned["contig_lengths"], genome)
        strangers = sorted({c.contig for c in calls} - set(scanned["contig_lengths"]))
        if strangers:
            raise UserError(f"{calls_path}: calls on {strangers[0]}, a contig {genome} lacks; give that scan's calls")
        return
    genome = set(scanned.get("contigs") or [contig for contig, _, _ in scanned["regions"]]) if scanned else \
        {c.contig for c in calls}
    if genome and not annotation.annotated_contigs & genome:
        shown = ", ".join(sorted(genome)[:4]) + (", …" if len(genome) > 4 else "")
        if scanned is None:  # the calls' contigs are all that is known of the genome
            raise UserError(f"{annotation.path}: annotates none of the contigs with calls ({shown}); give the scan's "
                            "--summary (its genome and regions), or the annotation of the scanned genome")
        raise UserError(f"{annotation.path}: shares no contig with the scanned genome ({shown}); it annotates "
                        "another genome")


def add_arguments(parser) -> None:
    matching = "; ".join(f"{label.name}: {label.site} sites within --{label.tolerance}-tolerance bp"
                         for label in SITE_LABELS.values())
    parser.description = (
        f"Match calls' peaks one to one to the annotated sites of their label on the same strand ({matching}). Calls and "
        "sites outside --regions/--contigs (or the scan's regions, given --summary) are left out. Prints JSON (with "
        "--out, writes it and prints a Markdown table): per label and overall, calls, sites, precision, recall and F1; with the --summary of a "
        "scan that wrote tracks, also per-base PR-AUC, top-k accuracy and the mean score around sites.")
    parser.add_argument("--calls", required=True, type=Path, help="calls from `dnabert2 scan`")
    parser.add_argument("--annotation", required=True, type=Path, metavar="GTF|GFF3|GBK", help="gene annotation")
    parser.add_argument("--out", type=output_file, help="JSON report (bgzip-compressed when named .gz); then its "
                        "figures are printed as a Markdown table (default: the report to standard output)")
    parser.add_argument("--summary", type=Path, help="the scan's summary (`scan --summary`): the labels it called, "
                        "the regions it scanned (so labels without calls count and sites outside the scan do not) and "
                        "its score tracks, from which per-base PR-AUC, top-k accuracy and the metaplot come")
    parser.add_argument("--held-out", type=Path, metavar="TASK", help="count only the test split of this task folder "
                        "(its test contigs, or its test stretches of contigs): the bases the model was not tuned on")
    add_settings(parser, ScanEvalSettings)


def run(args) -> None:
    read = [args.calls, args.annotation, args.summary, args.held_out and args.held_out / "task.json"]
    if args.summary is not None:  # the scan's tracks, read too
        scanned = _read_summary(args.summary)
        read += [path for kind in ("bigwig_dir", "bedgraph_dir") if scanned.get(kind)
                 for path in (args.summary.parent / scanned[kind]).glob("*")]
    check_outputs([args.out], read)
    report = evaluate_calls(args.calls, args.annotation, summary=args.summary, held_out=args.held_out,
                            settings=settings_from(args, ScanEvalSettings))
    text = json.dumps(report, indent=2) + "\n"
    if args.out:  # the report to its file, and the figures a reader wants to see here
        with atomic_text(args.out) as handle:
            handle.write(text)
        print_markdown(table_rows({Path(args.calls).name: report}))
    else:
        print(text, end="")


TABLE_COLUMNS = ("scan", "label", "scope", "tolerance", "calls", "sites", "precision", "recall", "f1", "pr_auc",
                 "top_k_accuracy")


def _well_formed(report) -> bool:
    """Whether a parsed report holds what tables and plots read: per-label metrics, and metaplot curves
    (numbers or nulls) one value per offset."""
    if not (isinstance(report, dict) and isinstance(report.get("labels"), dict)
            and all(isinstance(m, dict) for m in report["labels"].values())):
        return False
    metaplot = report.get("metaplot")
    if metaplot is None:
        return True
    offsets = metaplot.get("offsets") if isinstance(metaplot, dict) else None
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        return False
    width = offsets[1] - offsets[0] + 1
    return all(isinstance(values, list) and len(values) == width
               and all(v is None or isinstance(v, (int, float)) for v in values)
               for label, values in metaplot.items() if label != "offsets")


def read_report(path) -> dict:
    """A scan-eval report (JSON, or gzipped JSON), checked for what tables and plots read of it."""
    try:
        report = read_json(path)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError):
        report = None
    if not _well_formed(report):
        raise UserError(f"{path}: not a scan-eval report")
    if not report["labels"]:
        log.warning("%s: a report of no labels (scan-eval of a scan with no calls, without its --summary)", path)
    return report


def warn_unalike(reports: dict, what: str) -> None:
    """Warn where scan-eval reports (name → report) shown side by side counted a label's sites from
    another annotation, genome or transcripts' choice (their sites_sha256 differ; a report written
    before it has none, and is passed over): their figures do not compare."""
    for label in sorted({label for report in reports.values() for label in report["labels"]}):
        groups: dict[str, list[str]] = {}  # digest → the reports that have it
        for name, report in reports.items():
            if digest := report["labels"].get(label, {}).get("sites_sha256"):
                groups.setdefault(digest, []).append(name)
        if len(groups) > 1:
            log.warning("%s of reports of other %s sites: %s; their figures do not compare", what, label,
                        "; against ".join(", ".join(names) + f" ({_truth(reports[names[0]])})"
                                          for names in groups.values()))


def _truth(report: dict) -> str:
    """What chose a report's sites, for a message."""
    chosen = {"--biotype": report.get("biotypes"), "--tag": report.get("tags"), "--min-intron": report.get("min_intron")}
    return " ".join([str(report.get("annotation")), *(f"{flag} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                                                      for flag, v in chosen.items() if v is not None)])


def table_rows(reports: dict) -> list[tuple]:
    """One row per scan and label of scan-eval reports (name → report): where sites counted, the
    tolerance of the label's sites, and the figures, undefined ones blank. Labels in one order for every
    scan, so a model's rows and its baseline's line up."""
    rows = []
    for name, report in reports.items():
        for label, m in sorted(report["labels"].items()):
            tolerance = report.get(f"{SITE_LABELS[label].tolerance}_tolerance", "") if label in SITE_LABELS else ""
            rows.append((name, label, report.get("scope", ""), tolerance,
                         *("" if m.get(key) is None else m[key] for key in TABLE_COLUMNS[4:])))
    return rows


def add_table_arguments(parser) -> None:

    parser.description = ("One table of scan-eval reports, one row per scan and label: the scope (where sites "
                          "counted: a task's test split, --regions or --contigs, or the whole scan), the tolerance "
                          "(bp) of its kind of site, calls, sites, precision, recall, F1, per-base PR-AUC and top-k "
                          "accuracy. "
                          "Writes TSV (--out) and prints it as a Markdown table.")
    parser.add_argument("reports", nargs="+", metavar="REPORT", help="scan-eval reports, each NAME=PATH or a path "
                        "(named by its folder)")
    parser.add_argument("--out", type=output_file, help="table (TSV)")


def run_table(args) -> None:
    named = named_paths(args.reports)
    check_outputs([args.out], list(named.values()))
    reports = {name: read_report(path) for name, path in named.items()}
    warn_unalike(reports, "a table")
    rows = table_rows(reports)
    if args.out:
        with atomic_text(args.out) as handle:
            handle.write("\t".join(TABLE_COLUMNS) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    print_markdown(rows)


def print_markdown(rows: list[tuple]) -> None:
    print("| " + " | ".join(TABLE_COLUMNS) + " |\n|" + "---|" * len(TABLE_COLUMNS))
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")

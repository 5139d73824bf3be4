"""Genome-wide scanning with a fine-tuned classifier: windows over a FASTA (or over what a BAM covers,
or along its reads) → calls in BED, per-window scores in bedGraph, and a JSON summary.

A scan can be split into `--chunk i/n` jobs whose outputs `gather` (scan/gather.py) joins into what
one job gives.
"""

import logging
from contextlib import nullcontext
from pathlib import Path

from ..bed import write_junctions
from ..devices import batch_tokens as default_batch_tokens
from ..devices import data_workers
from ..errors import UserError
from ..hub import model_name, model_path
from ..options import add_settings, changed, model_argument, output_file, progress, settings_from, settings_with
from ..outputs import check_outputs, files_in, scratch_folder, standard_output, write_json, written_together
from ..sequences import Fasta, open_alignments, requested_regions, write_indexed_fasta
from ..sequences.fasta import NoRandomAccess
from ..settings import BLOCK_WINDOWS, DENSE_BLOCK_CORES, ScanSettings
from ..tasks.registry import SITE_LABELS, peak_distance
from .calls import MERGED, check_scored, count_calls, say_short_of_top, top, write_calls
from .dense import load_any_scanner
from .gather import gather, no_summary_of_stdout, relative, scan_line
from .model import called_labels
from .plan import blocks, chunk, neighbours, parse_chunk
from .tracks import Tracks, check_folders

__all__ = ["ScanSettings", "gather", "scan"]

log = logging.getLogger(__name__)


def _indexed(path, folder: str) -> Path:
    """The FASTA itself if it has random access, else a bgzip copy in `folder` (streamed, so memory
    does not grow with the genome)."""
    path = Path(path)
    try:
        Fasta(path, in_memory=False).close()
        return path
    except NoRandomAccess:
        pass
    log.info("%s: making an indexed bgzip copy to scan (`dnabert2 download` makes one to keep)", path)
    copy = Path(folder) / "genome.fa.gz"
    write_indexed_fasta(path, copy)
    return copy


def scan_mode(fasta, bam, reference, s: ScanSettings, tracks: bool, junctions) -> str:
    """"fasta" (windows over a genome), "reads" (along a BAM's reads) or "covered" (over the reference
    where a BAM covers it); refuses inputs and options that do not go with it."""
    if bam is None:
        if fasta is None:
            raise UserError("give --fasta, or --bam (with --reference for --covered)")
        if reference is not None:
            raise UserError("--reference is the genome a --bam's reads align to; a FASTA scan reads --fasta alone")
        if s.min_depth is not None:
            raise UserError("--covered needs --bam")
        mode = "fasta"
    elif s.min_depth is None:
        mode = "reads"
    elif reference is None:
        raise UserError("scanning covered regions needs the reference FASTA (--reference)")
    else:
        mode = "covered"
    # An option that would be ignored is refused, as the workflow refuses its keys (ONLY_WITH).
    if s.min_mapq and mode == "fasta":
        raise UserError("--min-mapq filters the alignments of a --bam scan: a FASTA scan has none")
    if s.min_reads != 1 and mode != "reads":
        raise UserError("--min-reads counts the reads supporting a site: it goes with reads mode (--bam without "
                        "--covered)")
    if junctions and (mode == "fasta" or s.chunk):
        raise UserError("--junctions needs --bam and a whole scan (for chunks, write them once with "
                        "`dnabert2 junctions`, --contigs for some)")
    if s.merge and s.min_distance is not None:
        raise UserError("--min-distance spaces the peaks called; --merge calls regions instead: give one of them")
    if s.merge and mode == "reads":
        raise UserError("--merge joins windows along the genome; reads mode calls sites with the reads that "
                        "support each: leave --merge out, or scan the reference where reads cover with --covered")
    if tracks and mode == "reads":
        raise UserError("--bedgraph and --bigwig hold window scores along the genome: they go with FASTA and "
                        "--covered scans, not with reads")
    return mode


def scan(model, out, *, fasta=None, bam=None, reference=None, bedgraph=None, bigwig=None, summary=None,
         junctions=None, settings: ScanSettings | None = None, progress=False, **overrides) -> dict:
    """Scan and write `out` (BED6+4 calls; bgzip with a tabix index if it ends in .gz), and the track
    folders `bedgraph` and `bigwig`, `summary` and `junctions` if given; returns the summary. Input:
    `fasta`; or `bam` read sequences; or, with the setting min_depth, the regions of `reference`
    (default: `fasta`) the BAM covers that deeply."""
    s = settings_with(ScanSettings, settings, overrides)
    if bam is not None:
        if fasta is not None and reference is not None:
            raise UserError("--fasta and --reference both name the genome a --bam's reads align to: give --reference")
        reference, fasta = reference or fasta, None
    check_outputs([out, summary, junctions], [fasta, bam, reference, s.regions, *files_in(model)])
    check_folders(bedgraph, bigwig, files=[out, summary, junctions])
    index, count = parse_chunk(s.chunk) if s.chunk else (0, 1)
    mode = scan_mode(fasta, bam, reference, s, bool(bedgraph or bigwig), junctions)
    if not 0 <= s.threshold <= 1:
        raise UserError(f"--threshold must be between 0 and 1, not {s.threshold}")
    if s.top_k is not None and count > 1:
        raise UserError("--top-k ranks calls over the whole genome: give it to `dnabert2 scan-gather`, not to a chunk")
    model = model_path(model)
    scanner = load_any_scanner(model, window=s.window, device=s.device, dtype=s.dtype, compile=s.compile)
    stride = check_calling(scanner, s, mode)
    batch_tokens = default_batch_tokens(s.batch_tokens, scanner.device)
    if scanner.max_tokens > batch_tokens and not scanner.dense:
        raise UserError(f"a {scanner.window} bp window can take {scanner.max_tokens} tokens, more than "
                        f"--batch-tokens {batch_tokens}: raise it or scan shorter windows")
    labels = called_labels(scanner, s.labels)
    warn_unspliced(mode, [scanner.labels[i] for i in labels])
    distances = {scanner.labels[i]: s.min_distance or max(peak_distance(scanner.labels[i]), stride or 0)
                 for i in labels}
    options = {"labels": labels, "threshold": s.threshold, "batch_tokens": batch_tokens,
               "workers": data_workers(s.workers),
               "progress": progress, "distances": distances}
    with scratch_folder("dnabert2-scan-") as tmp, (Tracks() if bedgraph or bigwig else nullcontext()) as graph:
        genome = _indexed(fasta or reference, tmp) if (fasta or reference) else None
        lengths, genome_lengths = _lengths(genome, bam, fasta or reference)
        source = str(bam if mode == "reads" else fasta or reference)

        def lacking(contig):  # with a BAM and its reference, the one of the two without the contig
            if bam is None or (genome_lengths is not None and contig not in genome_lengths):
                return str(fasta or reference)
            return str(bam)

        requested = requested_regions(lengths, lacking, s.regions, s.contigs)
        calls, tally, scanned = _run(mode, scanner, genome, bam, requested, lengths, s, stride, (index, count), graph,
                                     options)
        if count == 1:  # a chunk may lie in a gap of N, its scan's others not
            check_scored(tally.windows, tally.skipped, None if scanner.dense else s.max_n, mode)
        order = {c: i for i, c in enumerate(lengths)}
        calls = top(calls, s.top_k, order)
        called = [scanner.labels[i] for i in options["labels"]]
        tally.calls = count_calls(calls, called)
        say_short_of_top(tally.calls, s.top_k, s.threshold)
        report = {"model": model_name(model), "input": source, "mode": mode, "chunk": [index, count],
                  "labels": scanner.labels, "called": called,
                  "threshold": s.threshold, "top_k": s.top_k, "dense": scanner.dense,
                  "calls_by": calls_by(mode, scanner.dense, s.merge),
                  "min_distance": None if s.merge or (mode == "reads" and not scanner.dense) else distances,
                  "stride": stride, "strands": s.strands, "max_n": None if scanner.dense else s.max_n,
                  "min_depth": s.min_depth, "min_mapq": s.min_mapq, "min_reads": s.min_reads,
                  "regions": [list(r) for r in scanned], "batch_tokens": batch_tokens, "dtype": scanner.precision,
                  **tally.summary(scanner), "contigs": list(lengths), "contig_lengths": lengths,
                  "calls_file": relative(out, summary),
                  "bedgraph_dir": relative(bedgraph, summary) if bedgraph else None,
                  "bigwig_dir": relative(bigwig, summary) if bigwig else None,
                  "track_sha256": None}
        # Every output in place at the end, or none: a summary beside an earlier run's calls would be
        # gathered as if they were its own.
        with written_together():
            if junctions:
                write_junctions(junctions, bam, genome, min_mapq=s.min_mapq, regions=requested)
            if graph is not None:
                report["track_sha256"] = graph.write(bedgraph, bigwig, lengths)
            if summary:
                write_json(summary, report)
            write_calls(out, calls, order)
    return report


def warn_unspliced(mode: str, called: list[str]) -> None:
    """Reads mode places calls on the bases reads hold; a read that splices holds neither end of the
    intron, and those ends are the splice sites (tasks.registry)."""
    splice = [name for name in called if name in SITE_LABELS and SITE_LABELS[name].splice]
    if mode == "reads" and splice:
        log.warning("reads mode calls %s sites on the reads' own bases: where a read splices, the intron's first and "
                    "last bases (the sites) are none of its bases, so only unspliced reads (genomic DNA, pre-mRNA, a "
                    "retained intron) can show them; where RNA-seq reads splice, scan the reference they cover "
                    "(--reference with --covered N)", " and ".join(splice))


def calls_by(mode: str, dense: bool, merge: bool) -> str:
    """How a scan's calls were made, as its summary says."""
    if mode == "reads":
        return "peaks along each read, counted per site" if dense else "window sites along each read, counted per site"
    return MERGED if merge else "peaks"


def _lengths(genome, bam, shown) -> tuple[dict[str, int], dict[str, int] | None]:
    """Contig lengths of what is scanned, in the order outputs are sorted in: the genome's; or the BAM's
    (checked against its reference, named in messages as `shown`: `genome` may be a copy made to read
    it), in the reference's order when there is one. Then the genome's own, or None without one."""
    from .bam import bam_lengths

    lengths = None
    if genome:
        with Fasta(genome) as opened:
            lengths = opened.lengths
    if bam is None:
        return lengths, lengths
    aligned = bam_lengths(bam, genome, lengths, shown)
    return ({c: n for c, n in lengths.items() if c in aligned} if lengths else aligned), lengths


def check_calling(scanner, s: ScanSettings, mode: str) -> int | None:
    """The stride of a window scan (None for a dense one), once the options are checked against the
    kind of model and of scan."""
    if s.min_distance is not None and s.min_distance < 1:
        raise UserError(f"min_distance must be at least 1 bp, not {s.min_distance}")
    if not scanner.dense:
        if mode == "reads" and s.min_distance is not None:
            raise UserError("--min-distance: in reads mode a window classifier calls each window's site, with the "
                            "reads supporting it, and no peaks; it goes with per-base models and with FASTA and "
                            "--covered scans")
        if scanner.window is None:
            raise UserError(f"{model_name(scanner.folder)}: no task.json says which window length the model was "
                            "fine-tuned on; give --window")
        return s.stride or max(1, scanner.window // 4)
    for given, option in ((s.stride, "--stride"), (s.merge, "--merge"), (changed(s, ["max_n"]), "--max-n")):
        if given:
            raise UserError(f"{option} is for window scans: {scanner.folder} is a per-base model, which scores every "
                            "base once and calls single-base peaks")
    return None


def _run(mode, scanner, genome, bam, requested, lengths, s: ScanSettings, stride, chunk_of, graph, options):
    """The calls and tally of this chunk of the scan, in the way its mode scans, and the regions it
    scanned (where calls can be, which scan-eval counts sites in)."""
    from .bam import covered_regions, scan_reads, split_regions
    from .dense import dense_reader, dense_scores
    from .genome import BlockWindows, Calling, scan_blocks, window_scores

    distances = options.pop("distances")
    strands = {"both": "+-"}.get(s.strands, s.strands)
    if mode == "reads":  # peaks along each read, however many regions it crosses (bam.base_read_hits)
        calls, tally = scan_reads(scanner, bam, genome, requested, split_regions(requested, *chunk_of), stride=stride,
                                  strands=strands, distances=distances, min_mapq=s.min_mapq, min_reads=s.min_reads,
                                  max_n=s.max_n, **options)
        return calls, tally, requested
    wanted = requested
    if mode == "covered":
        # A window scan widens each covered stretch so that a site at its edge gets a window, on either
        # strand, wherever the task places sites in one (half a window for a centred site, 249 bp for a
        # promoter's TSS in 300). A dense scan reads its flanks from beyond the stretch anyway, but
        # scores only the stretch: where reads splice, the intron's first and last bases (the sites)
        # are no read's, just outside it. Widened by twice the peaks' distance (what a peak depends on,
        # see peaks.py), a peak at an edge is called as a genome scan would call it.
        pad = 2 * max(distances.values()) if scanner.dense else max(
            max(offset, scanner.window - 1 - offset) for pair in scanner.offsets.values() for offset in pair)
        with open_alignments(bam, genome) as alignments:
            wanted = covered_regions(alignments, requested, s.min_depth, pad, lengths, s.min_mapq)
        log.info("%d region(s) covered by %d or more reads", len(wanted), s.min_depth)
    # Peaks along the genome are called region by region, and no two bases of a region lie as far apart
    # as its length: a longer --min-distance calls the same peaks, with memory and time in proportion to it.
    longest = max((end - start for _, start, end in wanted), default=1)
    distances = {label: min(distance, longest) for label, distance in distances.items()}
    size = scanner.core if scanner.dense else scanner.window
    short = [f"{c}:{a}-{b}" for c, a, b in wanted if b - a < size and not scanner.dense]
    if short:
        log.warning("%d region(s) shorter than the %d bp window are not scanned (%s%s); a per-base model scans "
                    "every base", len(short), size, ", ".join(short[:3]), ", …" if len(short) > 3 else "")
        longest_region = max(b - a for _, a, b in wanted)
        wanted = [(c, a, b) for c, a, b in wanted if b - a >= size]  # the summary's: scan-eval counts sites there
        if not wanted:  # empty calls and tracks with exit 0 would pass for a scan that found nothing
            raise UserError(f"every region is shorter than the {size} bp window (the longest, {longest_region} bp): "
                            "give larger regions or contigs, a shorter --window, or scan with a per-base model")
    every = blocks(wanted, size, stride, DENSE_BLOCK_CORES if scanner.dense else BLOCK_WINDOWS)
    mine = chunk(every, *chunk_of)
    before, after = ([], []) if s.merge else neighbours(every, mine, 2 * max(distances.values()) + scanner.window)
    planned = [(b, False) for b in before] + [(b, True) for b in mine] + [(b, False) for b in after]
    blocks_read = [b for b, _ in planned]
    if scanner.dense:
        dataset, scores = dense_reader(scanner, genome, blocks_read, strands), dense_scores
    else:
        dataset = BlockWindows(genome, blocks_read, strands, scanner.folder / "tokenizer.json", scanner.max_tokens,
                               s.max_n)
        scores = window_scores
    calling = Calling(scanner, options.pop("threshold"), distances, s.merge)
    tally = scan_blocks(scanner, dataset, scores, planned, tracks=graph, calling=calling, **options)
    return calling.finish(), tally, wanted


def add_arguments(parser) -> None:
    parser.description = (
        "Slide windows of the task's length over every contig (or --regions/--contigs), on both strands, and "
        "classify them with a fine-tuned model; or, with a per-base model (a dense head, or the CNN baseline), tile "
        "each contig with cores that abut, read with their flanks, so every base is scored once per strand. Calls are "
        "peaks: a site (a window's, or a base) scoring at or above --threshold for a label (every label but 0 unless "
        "--labels) with no higher score within --min-distance bp on its strand (of equal such sites, the first); "
        "--merge merges overlapping or touching windows into regions instead. Output: BED6+4 in the narrowPeak layout (contig, start, end, label, probability x "
        "1000, strand, supporting windows or reads, -1, -1, peak offset), sorted. With --bam: scan the read sequences "
        "and place hits on the reference through the alignments, one call per site with its read support; or with "
        "--covered N scan the reference (--reference) where N or more reads cover it (window scans widen each "
        "stretch so that each of its bases is a window's site on both strands). --chunk i/n scans the i-th of n "
        "balanced parts; `dnabert2 scan-gather` joins them into what one scan gives.")
    parser.add_argument("--model", required=True, type=model_argument, help="fine-tuned model folder (`dnabert2 finetune`, `dnabert2 cnn`),"
                        " or a Hugging Face Hub id (owner/name[@revision])")
    parser.add_argument("--fasta", type=Path, help="genome FASTA (plain, gzip or bgzip; bgzip with .fai is read by "
                        "region)")
    parser.add_argument("--bam", type=Path,
                        help="indexed BAM/CRAM: scan its reads (or with --covered, what they cover)")
    parser.add_argument("--reference", type=Path, help="the BAM's reference FASTA (needed for --covered and CRAM; "
                        "--fasta given with --bam is taken for it)")
    parser.add_argument("--out", required=True, type=output_file, help="calls (BED6+4); a name ending in .gz is written "
                        "bgzip-compressed with a tabix index beside it; - writes plain BED to standard output")
    parser.add_argument("--bedgraph", type=Path, metavar="DIR", help="also write every window's (or base's) "
                        "probability as bedGraph, one file per label and strand (DIR/LABEL.plus.bedgraph, DIR/LABEL.minus.bedgraph)")
    parser.add_argument("--bigwig", type=Path, metavar="DIR", help="the same tracks as bigWig (DIR/LABEL.plus.bw, …), "
                        "as genome browsers load them")
    parser.add_argument("--summary", type=output_file, help="also write a JSON summary (windows, calls, bp/s: of the "
                        "genome, or of the reads in reads mode); scan-gather needs it")
    parser.add_argument("--junctions", type=output_file, help="with --bam: also write the junctions the reads show (CIGAR N) "
                        "as BED6, those reaching into the --contigs/--regions asked for; a whole scan's, not with --chunk")
    add_settings(parser, ScanSettings)


def run(args) -> None:
    no_summary_of_stdout(args)
    with standard_output(args.out) as out:
        report = scan(args.model, out, fasta=args.fasta, bam=args.bam, reference=args.reference,
                      bedgraph=args.bedgraph, bigwig=args.bigwig, summary=args.summary, junctions=args.junctions,
                      settings=settings_from(args, ScanSettings), progress=progress(args))
        print(scan_line(report, args.out))

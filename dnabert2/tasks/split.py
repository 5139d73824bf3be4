"""Where train, dev and test lie in a genome: whole contigs where the contigs can carry a split (test
contigs are then never seen in training), else stretches of each contig a window apart. Tasks of
windows (build.py) and dense tasks (dense.py) split alike."""

import logging

from ..errors import UserError
from .gue import SPLITS

log = logging.getLogger(__name__)

# Examples (sites of a dense task) of each class below which a dev or test split is warned of: its
# metrics move by 0.1 or more with one of them.
FEW = 10


def warn_few(split: str, counts: dict[str, int], what: str) -> None:
    """Warn of a dev or test split holding fewer than FEW of some class (`counts`: class → how many)."""
    few = {name: n for name, n in counts.items() if n < FEW}
    if split != "train" and few:
        log.warning("the %s split holds few %ss (%s): its metrics say little, one %s moving them by 0.1 or more "
                    "(a larger genome gives more)", split, what, ", ".join(f"{name} {n}" for name, n in few.items()), what)


class CannotSplit(UserError):
    """The contigs cannot carry a train/dev/test split."""


def split_contigs(counts: dict[str, int], test_contigs, dev_contigs, rng, fraction: float = 0.1) -> dict[str, str]:
    """Contig → split. Given contigs are used as they are; otherwise contigs (in a seeded order) go to
    test, then dev, until each holds at least `fraction` of the sites, passing over a contig that
    would take a split past 3 × `fraction` (a bacterium's chromosome beside its plasmids): contigs
    that cannot give it a share in between cannot carry the split."""
    both = sorted(set(test_contigs or ()) & set(dev_contigs or ()))
    if both:
        raise UserError(f"contig {both[0]} is named for both test and dev; a contig belongs to one split")
    named = {c: "test" for c in test_contigs or ()} | {c: "dev" for c in dev_contigs or ()}
    unknown = sorted(set(named) - set(counts))
    if unknown:
        raise UserError(f"contigs with no annotated site that gives a window, or not in the genome: "
                        f"{', '.join(unknown)}")
    total = sum(counts.values())
    assignment, short = dict(named), []
    for split, given in (("test", test_contigs), ("dev", dev_contigs)):
        # Drawn whether or not the contigs are given: the contigs a run chose (task.json names them),
        # given with its seed, then give the same task.
        order = rng.permutation(sorted(counts))
        if given:
            continue
        held = 0
        for contig in order:
            if held >= fraction * total:
                break
            if contig not in assignment and len(counts) - len(assignment) > 1 and \
                    held + counts[contig] <= 3 * fraction * total:
                assignment[contig] = split
                held += counts[contig]
        if held < fraction * total:
            short.append(split)
    assignment = {c: assignment.get(c, "train") for c in counts}
    for split in SPLITS:
        if not any(s == split for s in assignment.values()):
            raise CannotSplit(f"cannot split {len(counts)} contig(s) with annotated sites into train, dev and test "
                              f"by contig: none is left for {split}")
    if short:
        raise CannotSplit(f"cannot split {len(counts)} contig(s) with annotated sites by contig: no choice of them "
                          f"gives {short[0]} {fraction:.0%} to {3 * fraction:.0%} of the {total} sites")
    return assignment


def split_positions(positions: dict[str, list[int]], lengths: dict[str, int], gap: int, grid: int = 1,
                    fraction: float = 0.1) -> dict[str, list[tuple[str, int, int]]]:
    """Split → stretches of contigs, for genomes whose contigs cannot carry a split (a bacterium, an
    organelle, a chromosome arm): each contig's last sites (about `fraction` of them) are test, the
    ones before them dev, the rest train, with `gap` bp (a window) between the stretches so that no
    window reaches into two splits. A contig with too few sites to cut stays whole in train. Every
    stretch starts at a multiple of `grid` bp, and ends at one or at the contig's end: a dense task's
    cores then lie where a scan of the contig puts its own, and its figures are the scan's."""
    regions = {split: [] for split in SPLITS}
    gap = -(-gap // grid) * grid
    for contig, found in positions.items():
        found = sorted(found)
        k = max(1, round(fraction * len(found)))
        if len(found) < 2 * k + 1:
            regions["train"].append((contig, 0, lengths[contig]))
            continue
        # Cut halfway between the last train site and the first dev site, and so on.
        dev_at = (found[-2 * k - 1] + found[-2 * k]) // 2 // grid * grid
        test_at = (found[-k - 1] + found[-k]) // 2 // grid * grid
        regions["train"].append((contig, 0, max(0, dev_at - gap)))
        regions["dev"].append((contig, dev_at, max(dev_at, test_at - gap)))
        regions["test"].append((contig, test_at, lengths[contig]))
    return {split: [r for r in stretches if r[2] > r[1]] for split, stretches in regions.items()}


class Split:
    """Where train, dev and test lie: whole contigs, or stretches of them. A window belongs to the
    split whose stretch holds all of it."""

    def __init__(self, how: str, regions: dict[str, list[tuple[str, int, int]]]):
        self.how, self.regions = how, regions
        self.on = {}
        for split, found in regions.items():
            for contig, start, end in found:
                self.on.setdefault(contig, []).append((start, end, split))

    def of(self, contig: str, start: int, end: int) -> str | None:
        return next((split for a, b, split in self.on.get(contig, ()) if a <= start and end <= b), None)

    def contigs(self, split: str) -> list[str]:
        return sorted({contig for contig, _, _ in self.regions[split]})

    def describe(self) -> dict:
        """How task.json says where the splits lie."""
        return {"split": self.how, "contigs": {name: self.contigs(name) for name in SPLITS},
                **({"regions": {name: [list(r) for r in self.regions[name]] for name in SPLITS}}
                   if self.how == "positions" else {})}


def choose_split(sites: list, lengths: dict[str, int], test_contigs, dev_contigs, rng, gap: int,
                 grid: int = 1) -> Split:
    """By contig when the contigs carry it (the test split then shares no contig with training), else
    by position along each contig (see split_positions for `gap` and `grid`)."""
    counts, positions = {}, {}
    for site, _ in sites:
        counts[site.contig] = counts.get(site.contig, 0) + 1
        positions.setdefault(site.contig, []).append(site.position)
    try:
        assignment = split_contigs(counts, test_contigs, dev_contigs, rng)
    except CannotSplit as error:
        if test_contigs or dev_contigs:
            raise UserError(f"{error}; leave out --test-contigs and --dev-contigs to split each contig by "
                            "position instead") from None
        log.info("%s: splitting each contig by position instead (train, dev, test along it, a window apart)", error)
        return Split("positions", split_positions(positions, lengths, gap, grid))
    return Split("contigs", {split: [(c, 0, lengths[c]) for c, s in assignment.items() if s == split]
                             for split in SPLITS})

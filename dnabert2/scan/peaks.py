"""Peak calling on a score track by non-maximum suppression: a position is a maximum when no
position within `distance` bp of it scores higher, and a peak when it is a maximum, reaches the
threshold, and no maximum within `distance` bp before it scores as high (of equal maxima, the first
wins; a position that is no maximum suppresses nothing, so a site beside a plateau that a higher one
suppresses is still called). Two peaks are so always more than `distance` bp apart, and whether a
position is a peak depends only on the scores within 2 × `distance` of it, never on where a block or
a chunk of the scan ends: a chunk scores its neighbours' edge blocks too (not owned: they suppress,
but are not called), and the chunks' calls join into what one scan calls.

Scores are the integers calls carry (probability × 1000), fed in genome order, one region at a
time; positions never fed (between window sites, past a region's end) score -1.
"""

import numpy as np
from scipy.ndimage import maximum_filter1d


class PeakCaller:
    """The peaks of one track (one label, one strand)."""

    def __init__(self, threshold: int, distance: int):
        self.threshold, self.distance = threshold, distance
        self.peaks: list[tuple[str, int, int]] = []  # (contig, position, score)
        self.contig = None

    def start(self, contig: str, position: int) -> None:
        """A new region from `position`: nothing before it counts."""
        self.finish()
        self.contig, self.base = contig, position - 2 * self.distance
        self.scores = np.full(2 * self.distance, -1, dtype=np.int32)  # left context: none
        self.owned = np.zeros(2 * self.distance, dtype=bool)
        self.undecided = 2 * self.distance  # index of the first position not yet decided

    def feed(self, first: int, scores: np.ndarray, owned: bool) -> None:
        """Scores of positions first, first + 1, …; a gap since the last feed scores -1."""
        end = self.base + len(self.scores)
        if first < end:
            raise ValueError(f"positions fed out of order ({first} after {end})")
        gap = first - end
        self.scores = np.concatenate([self.scores, np.full(gap, -1, dtype=np.int32), scores.astype(np.int32)])
        self.owned = np.concatenate([self.owned, np.zeros(gap, dtype=bool), np.full(len(scores), owned)])
        self._decide(len(self.scores) - self.distance)

    def finish(self) -> None:
        """Decide the rest of the region: nothing after it counts."""
        if self.contig is None:
            return
        n = len(self.scores)
        self.scores = np.concatenate([self.scores, np.full(self.distance, -1, dtype=np.int32)])
        self.owned = np.concatenate([self.owned, np.zeros(self.distance, dtype=bool)])
        self._decide(n)
        self.contig = None

    def _decide(self, limit: int) -> None:
        """Call the peaks among positions undecided..limit-1 (their `distance` bp after are all known,
        and their 2 × `distance` bp before)."""
        d, u = self.distance, self.undecided
        if limit <= u:
            return
        b = self.scores
        ahead = _ahead(b, d)  # ahead[j] = max(b[j:j + d])
        j = np.arange(d, len(b) - d)
        maximum = np.zeros(len(b), dtype=bool)
        maximum[j] = (b[j] >= ahead[j + 1]) & (b[j] >= ahead[j - d])
        rival = _ahead(np.where(maximum, b, -1), d)  # the best maximum in b[j:j + d]
        index = np.arange(u, limit)
        value = b[u:limit]
        peak = (value >= self.threshold) & self.owned[u:limit] & maximum[u:limit] & (value > rival[index - d])
        self.peaks += [(self.contig, self.base + int(i), int(b[i])) for i in index[peak]]
        # Keep 2 × `distance` positions before the first undecided one, as its left context.
        keep = limit - 2 * d
        self.scores, self.owned = self.scores[keep:], self.owned[keep:]
        self.base += keep
        self.undecided = 2 * d


def _ahead(b: np.ndarray, d: int) -> np.ndarray:
    """max(b[j:j + d]) at each j (-1 past the end)."""
    return maximum_filter1d(b, size=d, origin=-(d // 2), mode="constant", cval=-1)

"""Per-base metrics of site prediction, as SpliceAI reports them: for each site label, the area under
the precision-recall curve (average precision) over every scored base, and top-k accuracy, the share
of annotated sites among the k best-scoring bases where k is the number of annotated sites.

Scores are counted as the integers scans write (probability × 1000, 0-1000), sites and other bases
apart, so a genome's worth of bases takes two histograms rather than its scores: fine-tuning and
`scan-eval` compute the same figures from them. Tied scores count as one threshold, as scikit-learn's
average_precision_score takes them; top-k takes an equal share of a tie at its boundary.
"""

import numpy as np

LEVELS = 1001  # scores 0..1000


class SiteCounts:
    """Scored bases of one label, by score: those at an annotated site and the others."""

    def __init__(self):
        self.sites = np.zeros(LEVELS, dtype=np.int64)
        self.others = np.zeros(LEVELS, dtype=np.int64)

    def add(self, scores: np.ndarray, positive: np.ndarray) -> None:
        """scores: ints 0-1000 of some bases; positive: which of them are sites."""
        self.sites += np.bincount(scores[positive], minlength=LEVELS)
        self.others += np.bincount(scores[~positive], minlength=LEVELS)

    def pr_auc(self) -> float | None:
        sites = self.sites[::-1].cumsum()  # true positives at each threshold, from the highest
        called = sites + self.others[::-1].cumsum()
        if not sites[-1]:
            return None
        recall = sites / sites[-1]
        precision = np.divide(sites, called, out=np.ones(LEVELS), where=called > 0)
        return float(np.sum(np.diff(recall, prepend=0.0) * precision))

    def top_k_accuracy(self) -> float | None:
        k = int(self.sites.sum())
        if not k:
            return None
        total = (self.sites + self.others)[::-1]
        before = np.concatenate([[0], total.cumsum()[:-1]])  # bases scoring above each level
        level = int(np.searchsorted(before + total, k))  # the level where the k-th best base lies
        taken = self.sites[::-1][:level].sum() + self.sites[::-1][level] * (k - before[level]) / total[level]
        return float(taken / k)

    def metrics(self) -> dict:
        pr_auc, top_k = self.pr_auc(), self.top_k_accuracy()
        return {"sites": int(self.sites.sum()), "bases": int(self.sites.sum() + self.others.sum()),
                "pr_auc": None if pr_auc is None else round(pr_auc, 4),
                "top_k_accuracy": None if top_k is None else round(top_k, 4)}


def as_scores(probabilities: np.ndarray) -> np.ndarray:
    """Probabilities as the integers calls and tracks carry (calls.score_of rounds alike)."""
    return np.rint(np.asarray(probabilities) * 1000).astype(np.int64)


def summarise(per_label: dict[str, dict]) -> dict:
    """The labels' metrics with their means over the labels (which pick the best epoch)."""
    means = {}
    for key in ("pr_auc", "top_k_accuracy"):
        values = [m[key] for m in per_label.values() if m[key] is not None]
        means[key] = round(float(np.mean(values)), 4) if values else None
    return {**means, "labels": per_label}


def dense_scores(targets: np.ndarray, probabilities: np.ndarray, labels: list[str]) -> dict:
    """Metrics of every site label (1..K-1) from per-base class indices (n,) and probabilities (n, K)."""
    per_label = {}
    for c in range(1, len(labels)):
        counts = SiteCounts()
        counts.add(as_scores(probabilities[:, c]), targets == c)
        per_label[labels[c]] = counts.metrics()
    return summarise(per_label)

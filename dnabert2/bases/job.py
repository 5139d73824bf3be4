"""Fine-tuning on a dense task: batches of whole windows with every core base labelled (flanks not
scored), a cross-entropy weighted against the rarity of sites, and per-base PR-AUC and top-k
accuracy on dev (mean over the site labels) to pick the epoch."""

import numpy as np
import torch

from ..devices import finite
from ..tasks.dense import IGNORED, counted, read_dense_task
from .inputs import dense_batch, encode_bases
from .metrics import dense_scores


class DenseJob:
    head, metric = "dense", "pr_auc"
    # Its scores may still rank sites (PR-AUC, top-k), but a scan at its default threshold calls none.
    one_class_warning = ("the selected model calls no site on any dev base (no site's probability tops the "
                         "background's): a scan calls few sites or none at the default --threshold (--threshold 0 --top-k K ranks "
                         "them)")
    baseline = "the CNN baseline (dnabert2 cnn, on the same task)"
    max_tokens = None  # windows are never cut: every base needs its token

    def __init__(self, data, tokenizer):
        """tokenizer None: a model that reads bases only (the CNN baseline)."""
        self.folder = data
        self.task = read_dense_task(data)
        self.classes = len(self.task.labels)
        self.sequences = {split: [w.sequence for w in rows] for split, rows in self.task.splits.items()}
        self.encoded = {split: encode_bases(tokenizer, seqs) if tokenizer is not None else None
                        for split, seqs in self.sequences.items()}
        self.targets = {split: self.task.targets(split) for split in self.task.splits}
        # Metrics count each genome base once (a stretch's last core overlaps the one before it), and
        # none that is unlabelled.
        self.counted = {split: counted(rows, self.task.core).ravel() & (self.targets[split].ravel() != IGNORED)
                        for split, rows in self.task.splits.items()}
        self.train_size = len(self.sequences["train"])
        # Each class weighs as the square root of its inverse frequency: sites, one base in thousands,
        # pull the loss without the weights of plain inverse frequency, which make every base a site.
        labelled = self.targets["train"][self.targets["train"] != IGNORED]
        counts = np.bincount(labelled, minlength=self.classes).astype(float)
        self.class_weights = torch.tensor(np.sqrt(counts.sum() / (self.classes * np.maximum(counts, 1))),
                                          dtype=torch.float32)

    def _batch(self, split, chosen, device, labelled: bool) -> dict:
        sequences = [self.sequences[split][i] for i in chosen]
        encoded = [self.encoded[split][i] for i in chosen] if self.encoded[split] is not None else None
        labels = None
        if labelled:
            flank = self.task.flank
            labels = np.full((len(chosen), len(sequences[0])), IGNORED, dtype=np.int64)
            labels[:, flank:flank + self.task.core] = self.targets[split][chosen]
        batch = dense_batch(encoded, sequences, device, labels)
        if labelled:
            batch["class_weights"] = self.class_weights.to(device)
        return batch

    def batches(self, split, order, batch_size, device):
        for start in range(0, len(order), batch_size):
            yield self._batch(split, order[start:start + batch_size], device, labelled=True)

    @torch.no_grad()
    def predict(self, model, split, batch_size, device, mixed) -> np.ndarray:
        """Class probabilities (windows × core bases, K), window by window."""
        model.eval()
        flank, core = self.task.flank, self.task.core
        out = []
        order = np.arange(len(self.sequences[split]))
        for start in range(0, len(order), batch_size):
            with mixed:
                logits = model(**self._batch(split, order[start:start + batch_size], device, labelled=False)).logits
            out.append(finite(logits[:, flank:flank + core].float().softmax(-1)).flatten(0, 1).cpu().numpy())
        model.train()
        return np.concatenate(out)

    def scores(self, split, probabilities) -> dict:
        once = self.counted[split]
        return dense_scores(self.targets[split].ravel()[once], probabilities[once], self.task.labels)

    def one_class(self, probabilities) -> bool:
        """No base called a site at all."""
        return bool((probabilities.argmax(1) == 0).all())

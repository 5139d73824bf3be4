"""Baselines beside the fine-tuned model, trained and scored on the same splits: logistic regression
on k-mer frequencies, and a small convolutional network on one-hot sequence (in the manner of
DeepBind and CNNProm). Each picks its setting on dev and reports test metrics as fine-tuning does."""

import numpy as np
import torch
from torch import nn

from .devices import resolve_device
from .tasks.gue import SPLITS, one_class, scores

ONE_HOT = np.zeros((256, 4), dtype=np.float32)
for _i, _base in enumerate("ACGT"):
    ONE_HOT[ord(_base), _i] = 1.0  # N (and anything else) stays all-zero


def kmer_baseline(task: dict, k: int = 6, seed: int = 0) -> dict:
    """Logistic regression on k-mer frequencies; the regularisation strength picked on dev MCC."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import normalize

    vectoriser = CountVectorizer(analyzer="char", ngram_range=(k, k), lowercase=False)
    features = {split: None for split in SPLITS}
    features["train"] = normalize(vectoriser.fit_transform(task["train"][0]), norm="l1")
    for split in ("dev", "test"):
        features[split] = normalize(vectoriser.transform(task[split][0]), norm="l1")
    best = None
    for c in (1.0, 10.0, 100.0, 1000.0):
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(features["train"], task["train"][1])
        # A dev split of one class has no MCC (None): every C ranks alike, the first is kept.
        dev = scores(task["dev"][1], _full_probabilities(model, features["dev"], task))["mcc"] or 0.0
        if best is None or dev > best[0]:
            best = (dev, model)
    probabilities = _full_probabilities(best[1], features["test"], task)
    return {**scores(task["test"][1], probabilities), "collapsed": one_class(probabilities)}


def _full_probabilities(model, features, task) -> np.ndarray:
    """predict_proba with a column for every class of the task, in label order."""
    classes = int(task["train"][1].max()) + 1
    probabilities = np.zeros((features.shape[0], classes))
    probabilities[:, model.classes_] = model.predict_proba(features)
    return probabilities


def one_hot(sequences: list[str]) -> torch.Tensor:
    """(n, 4, longest) one-hot, zero past each sequence's end."""
    longest = max(map(len, sequences))
    codes = np.zeros((len(sequences), longest), dtype=np.uint8)
    for i, s in enumerate(sequences):
        codes[i, :len(s)] = np.frombuffer(s.encode(), dtype=np.uint8)
    return torch.from_numpy(ONE_HOT[codes]).transpose(1, 2).contiguous()


class CNN(nn.Module):
    """Two convolutions (9 bp filters) and a global max pool: motifs anywhere in the sequence. Each
    sequence is read as if alone: the padding past its end neither feeds the second convolution nor
    enters the pool, so a score does not depend on the longest sequence of its split."""

    def __init__(self, classes: int, channels: int = 64, width: int = 9, dropout: float = 0.2):
        super().__init__()
        self.first = nn.Sequential(nn.Conv1d(4, channels, width, padding=width // 2), nn.ReLU(), nn.MaxPool1d(2),
                                   nn.Dropout(dropout))
        self.second = nn.Sequential(nn.Conv1d(channels, channels, width, padding=width // 2), nn.ReLU())
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x, lengths):  # x: (batch, 4, length), lengths: (batch,) bases of each
        h = self.first(x)  # (batch, channels, length // 2)
        real = torch.arange(h.shape[-1], device=x.device)[None, :] < (lengths // 2).clamp(min=1)[:, None]
        h = self.second(h * real[:, None])
        return self.classifier(h.masked_fill(~real[:, None], float("-inf")).amax(-1))


@torch.no_grad()
def _probabilities(model, x, lengths, batch: int = 512) -> np.ndarray:
    model.eval()
    out = np.concatenate([model(x[i:i + batch], lengths[i:i + batch]).softmax(-1).cpu().numpy()
                          for i in range(0, len(x), batch)])
    model.train()
    return out


def cnn_baseline(task: dict, seed: int = 0, epochs: int = 30, patience: int = 5, batch_size: int = 64,
                 lr: float = 1e-3, device="auto") -> dict:
    """The CNN trained on train, the epoch with the best dev MCC kept (early stopping), scored on test."""
    device = resolve_device(device)
    torch.manual_seed(seed)
    x = {split: one_hot(task[split][0]).to(device) for split in SPLITS}
    lengths = {split: torch.tensor([len(q) for q in task[split][0]], device=device) for split in SPLITS}
    y = torch.tensor(task["train"][1], device=device)
    model = CNN(int(task["train"][1].max()) + 1).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    generator = torch.Generator().manual_seed(seed)
    best, best_state, waited = -2.0, None, 0
    for _ in range(epochs):
        for chosen in torch.randperm(len(y), generator=generator).split(batch_size):
            chosen = chosen.to(device)
            loss = nn.functional.cross_entropy(model(x["train"][chosen], lengths["train"][chosen]), y[chosen])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        dev = scores(task["dev"][1], _probabilities(model, x["dev"], lengths["dev"]))["mcc"] or 0.0  # as above
        if dev > best:
            best, best_state, waited = dev, {k: v.clone() for k, v in model.state_dict().items()}, 0
        else:
            waited += 1
            if waited >= patience:
                break
    model.load_state_dict(best_state)
    probabilities = _probabilities(model, x["test"], lengths["test"])
    return {**scores(task["test"][1], probabilities), "collapsed": one_class(probabilities)}

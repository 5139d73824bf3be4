"""The fine-tuned classifier a scan runs: its labels, the window it was trained on, where in a window
the predicted site lies, and batched inference over packed token ids."""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..devices import Pending, autocast, compiled, inference_device, inference_weights, upload
from ..errors import UserError
from ..hub import model_name
from ..bases.cnn import is_cnn
from ..model import check_model_folder, classifier_head, is_classifier, load_model
from ..tasks.description import read_description
from ..tasks.registry import KINDS, label_position
from .tracks import file_name

log = logging.getLogger(__name__)


@dataclass
class Scanner:
    model: torch.nn.Module
    folder: Path
    labels: list[str]  # class index → name
    window: int | None  # bp; None where no task says (predict scores sequences of any length)
    offsets: dict[str, tuple[int, int]]  # label → (site offset in a + window, in a − window)
    device: torch.device
    precision: str  # "bf16" or "fp32"
    compile: bool = False

    def __post_init__(self):
        self.model = compiled(inference_weights(self.model, self.precision), self.compile)
        self.autocast = autocast(self.device, self.precision)

    dense = False

    @property
    def max_tokens(self) -> int:
        """Tokens a window can take at most (one base each): inference reads every base, as load_model
        does. The fine-tuning cut-off bounded training's memory; applied here it would drop the end of
        a window rich in N (one token each) unsaid."""
        return self.window + 2

    @property
    def tokenizer(self) -> Path:
        return self.folder / "tokenizer.json"

    def site(self, label: str, start: int, strand: str) -> int:
        plus, minus = self.offsets[label]
        return start + (plus if strand == "+" else minus)

    def call_span(self, label: str, strand: str, site: int) -> tuple[int, int]:
        """A call's region: the window whose site it is."""
        start = site - self.site(label, 0, strand)
        return start, start + self.window

    def probabilities(self, ids: np.ndarray, lengths: np.ndarray, batch_tokens: int) -> np.ndarray:
        """Class probabilities (n, K) of n windows given as concatenated ids and their lengths,
        run in packed batches of at most batch_tokens tokens."""
        return self.launch(ids, lengths, batch_tokens).result()

    @torch.inference_mode()
    def launch(self, ids: np.ndarray, lengths: np.ndarray, batch_tokens: int) -> Pending:
        """`probabilities`, queued on the device."""
        parts = []
        ends = np.cumsum(lengths)
        first = 0
        while first < len(lengths):
            base = ends[first - 1] if first else 0
            last = max(first + 1, int(np.searchsorted(ends, base + batch_tokens, side="right")))
            chunk = upload(ids[base:ends[last - 1]], self.device)
            # cu_seqlens stays on the CPU: the model checks it there and copies it, without a sync.
            cu = torch.from_numpy(np.concatenate([[0], ends[first:last] - base]).astype(np.int32))
            with self.autocast:
                logits = self.model(chunk, cu_seqlens=cu, max_seqlen=int(lengths[first:last].max())).logits
            parts.append(logits.float().softmax(-1))
            first = last
        classes = len(self.labels)
        return Pending(parts, lambda arrays: np.concatenate(arrays) if arrays else np.empty((0, classes), np.float32))


def is_per_base(folder: Path) -> bool:
    """A per-base model (a dense head, or the CNN baseline), which scans densely."""
    return is_cnn(folder) or (is_classifier(folder) and classifier_head(folder) == "dense")


def is_window_classifier(folder: Path) -> bool:
    """A window classifier's folder; False for anything else, a folder that holds no model included
    (loading it says what is wrong), so a command can refuse the wrong kind before loading it."""
    return folder.is_dir() and is_classifier(folder) and not is_per_base(folder)


def scanning_device(folder: Path, device, dtype: str):
    """The device and precision a scan runs on, once the folder is known to hold a classifier."""
    check_model_folder(folder)
    if not is_classifier(folder) and not is_cnn(folder):
        raise UserError(f"{model_name(folder)}: a model without a classification head; scoring needs a fine-tuned model "
                        "(`dnabert2 finetune`, or `dnabert2 cnn`)")
    return inference_device(device, dtype)


def load_scanner(folder, *, window: int | None = None, device="auto", dtype: str = "auto", compile: bool = False) -> Scanner:
    """The window classifier in `folder` (a fine-tuned model: ours, LoRA or merged, or one saved by
    the released code) ready to scan. window: bp, default the task's (None when the folder has no
    task.json saying it: a scan then needs it given)."""
    folder = Path(folder)
    device, precision = scanning_device(folder, device, dtype)
    task = read_description(folder)
    model = load_model(folder, head="classification", device=device, trained=True)
    classes = model.config.num_labels
    # LABEL_i is the name Hugging Face (and save_model, for its loaders) gives a label that has none.
    named = {i: name for i, name in (model.config.id2label or {}).items() if name != f"LABEL_{i}"}
    labels = model_labels(folder, task, classes, named)
    trained_window = task.get("window_bp")
    if window is None:
        window = trained_window
    elif trained_window is not None and window != trained_window:
        log.warning("%s was fine-tuned on %d bp windows; scanning %d bp windows, with the site assumed "
                    "at their centre", folder, trained_window, window)
    return Scanner(model, folder, labels, window, _offsets(task, labels, window), device, precision, compile)


def model_labels(folder, task: dict, classes: int, named: dict | None = None) -> list[str]:
    """The names of the `classes` labels a model scores: task.json's, which must name each one (a label
    left unnamed would never be called, one past them is a number in the calls), else `named` (a
    config's), else their numbers."""
    given = task.get("labels")
    if given is not None and set(given) != {str(i) for i in range(classes)}:
        raise UserError(f"{folder}/task.json names {len(given)} labels ({', '.join(map(str, given))}), but the model "
                        f"scores {classes} (0 to {classes - 1})")
    named = named or {}
    return distinct_labels([str(given[str(i)]) if given is not None else str(named.get(i, i)) for i in range(classes)],
                           folder)


def distinct_labels(labels: list[str], folder) -> list[str]:
    """The labels, refused where two are one name, or one track file's name: their calls and tracks
    would merge into one label's, unsaid (a hand-written task.json)."""
    seen = {}
    for label in labels:
        key = file_name(label, "+", "bedgraph")
        if key in seen:
            raise UserError(f"{folder}: labels {seen[key]!r} and {label!r} would share calls and track files; give "
                            "each a name of its own in task.json")
        seen[key] = label
    return labels


def _offsets(task: dict, labels: list[str], window: int | None) -> dict[str, tuple[int, int]]:
    """Where each label's site lies in a window on either strand: where the task's geometry put it,
    in windows of the length it was built for; else at the centre."""
    if window is None:
        return {}
    kind = KINDS.get(task.get("task"))
    geometries = {label.name: label.geometry for label in kind.sites if label.geometry.length == window} if kind else {}
    centre = window // 2
    return {label: (geometries[label].upstream, geometries[label].downstream) if label in geometries
            else (centre, window - 1 - centre) for label in labels}


def called_labels(scanner: Scanner, names) -> list[int]:
    """Class indices to call: the named ones, or every class but 0 (the background class of GUE tasks)."""
    if not names:
        return list(range(1, len(scanner.labels)))
    return sorted({label_index(scanner, name, "--labels") for name in names})


def label_index(scanner: Scanner, name: str, option: str) -> int:
    """A label given (with `option`) by name or by its index in the model's labels."""
    position = label_position(scanner.labels, name)
    if position is not None:
        return position
    raise UserError(f"{option} {name!r}: {scanner.folder} has no such label (labels: {', '.join(scanner.labels)})")

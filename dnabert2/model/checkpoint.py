"""Model folders in the Hugging Face layout: config.json, model.safetensors (or the released
pytorch_model.bin) and tokenizer.json. The released DNABERT-2-117M files, and classifiers fine-tuned
with the released code, load as they are; anything that does not fit is an error naming the keys."""

import hashlib
import json
import logging
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from ..devices import resolve_device
from ..errors import UserError
from ..hub import ADAPTER_FILES, WEIGHT_FILES, find_weights, model_name, model_path, shadowing_folder
from ..outputs import atomic_output
from ..tokenizer import SPECIAL_TOKENS, load_tokenizer, save_tokenizer
from .adapters import is_adapter, merge_adapter
from .config import ARCHITECTURES, ModelConfig
from .heads import (HEADS, DNABertForBaseClassification, DNABertForEmbedding, DNABertForMaskedLM,
                    DNABertForSequenceClassification)

log = logging.getLogger(__name__)

TIED = "cls.predictions.decoder.weight"
EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SAVED_FILES = ("config.json", "model.safetensors", *TOKENIZER_FILES)  # what save_model writes
# The saved weights that tell a head, and the count of its classes.
LABELLED_HEADS = {"classification": "classifier.weight", "dense": "base_head.out.weight"}


def _unwrap(model):
    """The model inside torch.compile and DistributedDataParallel wrappers."""
    while hasattr(model, "_orig_mod") or hasattr(model, "module"):
        model = getattr(model, "_orig_mod", None) or model.module
    return model


def _head_of(model) -> str:
    for name, cls in HEADS.items():
        if type(model) is cls:
            return name
    raise UserError(f"save_model saves dnabert2 models, not {type(model).__name__}")


def _head_keys(key: str) -> bool:
    """Parameters that belong to a head rather than to the encoder."""
    return not key.startswith("bert.") or key.startswith("bert.pooler.")


def saved_head(state: dict) -> str:
    for head, key in LABELLED_HEADS.items():
        if key in state:
            return head
    if any(key.startswith("cls.predictions.") for key in state):
        return "mlm"
    return "encoder"


# What torch, safetensors and peft raise for a file that is not what it claims to be: truncated, empty,
# other bytes, JSON that is not, or tensors of other shapes than the model's.
UNREADABLE = (SafetensorError, RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError)


def unreadable(what, error: Exception) -> UserError:
    lines = str(error).splitlines() or [error.__class__.__name__]
    detail = next((line.strip() for line in lines if "size mismatch" in line), lines[0])  # torch's is on line 2
    return UserError(f"{what} ({detail[:160]})")


def _holds(file: Path, key: str) -> bool:
    try:
        with safe_open(file, "pt") as weights:
            return key in weights.keys()
    except UNREADABLE as error:
        raise unreadable(f"{file}: cannot read the weights", error) from None


def weights_file(folder: Path) -> Path:
    """The file holding a model folder's weights."""
    file = find_weights(folder)
    if file is None:
        raise UserError(f"{model_name(folder)}: no model weights there (expected {' or '.join(WEIGHT_FILES)})")
    return file


def base_weights(folder: Path) -> dict:
    """The weights file a LoRA adapter is trained on and its SHA-256, and its config.json's: a folder of
    the same name whose weights were replaced since (pretrained again, say), or whose config was edited
    (its pooling, say, which every prediction goes through), is told apart by them."""
    file = weights_file(folder)
    return {"file": file.name, "sha256": sha256_of(file), "config_sha256": sha256_of(folder / "config.json")}


def sha256_of(file: Path) -> str | None:
    """A file's SHA-256, or None where there is no such file."""
    if not file.is_file():
        return None
    with open(file, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of a model folder, keys normalised to the bert.… layout."""
    file = weights_file(folder)
    try:
        if file.suffix == ".safetensors":
            state = load_file(file)
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except UNREADABLE as error:
        raise unreadable(f"{file}: cannot read the weights", error) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{file}: not a state dict of tensors")
    # Wrappers add prefixes: DistributedDataParallel "module.", torch.compile "_orig_mod.".
    stripped = True
    while stripped and state:
        stripped = False
        for prefix in ("module.", "_orig_mod."):
            if all(key.startswith(prefix) for key in state):
                state = {key[len(prefix):]: value for key, value in state.items()}
                stripped = True
    # A bare BertModel saved on its own has no "bert." prefix.
    if any(key.startswith("embeddings.") for key in state) and not any(key.startswith("bert.") for key in state):
        state = {f"bert.{key}": value for key, value in state.items()}
    return state


def _names(keys) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:4])
    return shown + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")


def check_tokenizer(tokenizer: Tokenizer, config: ModelConfig, model_folder: Path | None = None,
                    source: str = "tokenizer") -> None:
    """A tokenizer fits a model when its vocabulary has the model's size and, where the model folder
    keeps its own tokenizer.json, the same tokens with the same ids."""
    size = tokenizer.get_vocab_size()
    if size != config.vocab_size:
        raise UserError(f"{source}: vocabulary of {size} tokens does not match the model's {config.vocab_size}")
    # As many tokens, numbered past the embedding table, would index out of it (on a GPU, a device assert).
    highest = max(tokenizer.get_vocab().values(), default=-1)
    if highest >= config.vocab_size:
        raise UserError(f"{source}: token ids reach {highest}, past the model's {config.vocab_size} embeddings")
    own = model_folder / "tokenizer.json" if model_folder else None
    if own and own.is_file() and Tokenizer.from_file(str(own)).get_vocab() != tokenizer.get_vocab():
        raise UserError(f"{source}: vocabulary differs from the model's own {own}")


def check_model_folder(folder: Path) -> None:
    """Refuse what is not a model folder (a whole model, or a LoRA adapter on one), saying what it is
    when that is clear (a task's data)."""
    if not folder.exists():
        shadow = shadowing_folder(folder)
        raise UserError(f"{folder}: no such folder, nor a Hugging Face Hub id (owner/name[@revision])"
                        + (f"; the folder {shadow}/ here makes it a path" if shadow else ""))
    if not folder.is_dir():
        raise UserError(f"{folder}: not a model folder")
    if not (folder / "config.json").is_file() and (folder / "adapter_config.json").is_file() \
            and not (folder / "finetune.json").is_file():
        raise UserError(f"{model_name(folder)}: a LoRA adapter without the finetune.json that names its base model: "
                        "copied in part? Copy the whole folder, or fine-tune it again")
    if not (folder / "config.json").is_file() and not is_adapter(folder):
        kind = "the data of a task (`dnabert2 tasks`), " if (folder / "task.json").is_file() else ""
        # Pretraining writes its model at the end: checkpoints alone are a run stopped before it.
        stopped = "; the checkpoints of a pretraining stopped early, which `dnabert2 pretrain --resume` goes on " \
                  "from" if (folder / "checkpoints").is_dir() else ""
        raise UserError(f"{model_name(folder)}: not a model folder ({kind}no config.json in it{stopped})")


def is_classifier(folder: Path) -> bool:
    """A fine-tuned classifier, of windows or of bases (ours, or saved by the released code), told from
    its files without loading it."""
    return _labelled_head(folder) is not None


def classifier_head(folder: Path) -> str:
    """"dense" for a fine-tuned per-base classifier, "classification" for a window classifier."""
    return _labelled_head(folder) or "classification"


def _labelled_head(folder: Path) -> str | None:
    """The head a fine-tuned classifier was saved with (finetune.json's, or config.json's architectures,
    else its weights'), or None for another model; a finetune.json or config.json that is no JSON is
    refused in one line."""
    described = folder / ("finetune.json" if (folder / "finetune.json").is_file() else "config.json")
    if not described.is_file():
        return None  # load_model will say what is wrong with the folder
    try:
        written = json.loads(described.read_text())
        if described.name == "finetune.json":
            return written.get("head", "classification")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
        raise UserError(f"{described}: not readable as JSON ({error.__class__.__name__})") from None
    architectures = written.get("architectures") if isinstance(written, dict) else None
    if architectures:
        return next((head for head in LABELLED_HEADS if ARCHITECTURES[head] in architectures), None)
    # No architectures (a config.json written by hand, or by other code): the weights' names say.
    file = find_weights(folder)
    if file is None or file.suffix != ".safetensors":
        return None
    try:
        with safe_open(file, "pt") as weights:
            head = saved_head(set(weights.keys()))
    except SafetensorError:
        return None
    return head if head in LABELLED_HEADS else None


def adapter_base(folder: Path, info: dict) -> Path:
    """The folder of the base model a LoRA adapter (its finetune.json: `info`) loads on, with the
    weights it was trained on."""
    base = model_path(info["base_model"])
    if not base.is_dir():
        raise UserError(f"{model_name(folder)}: its base model {base} is not there any more (finetune.json names it)")
    recorded = info.get("base_weights")  # adapters saved before it was recorded load as they did
    if recorded and sha256_of(base / recorded["file"]) != recorded["sha256"]:
        raise UserError(f"{model_name(folder)}: its base model {base} has other weights than the adapter was trained "
                        "on (replaced since); restore the earlier weights, or fine-tune again")
    if recorded and recorded.get("config_sha256") not in (None, sha256_of(base / "config.json")):
        raise UserError(f"{model_name(folder)}: its base model's {base / 'config.json'} differs from the one the "
                        "adapter was trained with (edited since); restore it, or fine-tune again")
    return base


def load_adapter(folder: Path, head=None, *, num_labels: int | None = None, pooling: str | None = None,
                 device: str | torch.device = "cpu", dtype=None) -> torch.nn.Module:
    """A LoRA fine-tuning folder as a model: its base model with the adapter and head merged in, or that
    merged encoder under the encoder or embedding head, as load_model gives them from a merged folder."""
    info = json.loads((folder / "finetune.json").read_text())
    base = adapter_base(folder, info)
    saved = info.get("head", "classification")
    if head not in (None, saved, "encoder", "embedding"):
        raise UserError(f"{model_name(folder)}: a fine-tuned {saved} model; head {head!r} is not available from it")
    adapter_weights = folder / ADAPTER_FILES[1]
    if not adapter_weights.is_file():  # peft would take the folder for a Hub id, and fail with a traceback
        raise UserError(f"{model_name(folder)}: a LoRA fine-tuning folder without its {adapter_weights.name}: copied "
                        "in part? Copy the whole folder, or fine-tune it again")
    # peft cannot load an adapter without the head it was saved with, whichever head is asked for.
    if not _holds(adapter_weights, "base_model.model." + LABELLED_HEADS[saved]):
        raise UserError(f"{model_name(folder)}: its adapter weights hold no trained {saved} head; fine-tune it again")
    # The base's head is new here, but the adapter brings the trained one: no word of it.
    model, _ = assemble(base, saved, num_labels=info["num_labels"])
    own = folder / "tokenizer.json"
    if own.is_file():  # what the commands tokenise with for this folder: the base model's vocabulary
        check_tokenizer(load_tokenizer(own), model.config, base, source=str(own))
    try:
        model = merge_adapter(model, folder)
    except UNREADABLE as error:
        raise unreadable(f"{model_name(folder)}: cannot load its LoRA adapter", error) from None
    if head in ("encoder", "embedding"):
        encoder = HEADS[head](model.config, **({"pooling": pooling or "mean"} if head == "embedding" else {}))
        encoder.bert.load_state_dict({k: v for k, v in model.bert.state_dict().items() if not k.startswith("pooler.")})
        model = encoder
    else:
        if num_labels is not None and num_labels != info["num_labels"]:
            raise UserError(f"{model_name(folder)}: the classifier has {info['num_labels']} labels, not {num_labels}")
        if saved == "classification" and pooling not in (None, model.config.classifier_pooling):
            raise UserError(f"{model_name(folder)}: the classifier pools with {model.config.classifier_pooling!r}, "
                            f"not {pooling!r}")
    return model.to(resolve_device(device), dtype).eval()


def load_model(path, head: str | None = None, *, num_labels: int | None = None, pooling: str | None = None,
               device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
               trained: bool = False) -> torch.nn.Module:
    """A model folder (this project's or a released DNABERT-2), or a Hub id such as
    "zhihan1996/DNABERT-2-117M@<revision>", as a torch module in eval mode.

    head: None = as saved; "encoder", "mlm", "classification", "dense" or "embedding". Asking for a head the
    folder does not hold initialises that head afresh (the start of fine-tuning); the encoder weights
    must all be there. num_labels: the classes of a new classifier, or a check on a saved one.
    pooling: "cls" or "mean" for a new classifier; "mean", "cls" or "max" for embeddings.
    trained: refuse a head the weights do not hold, as scoring does (a fresh head scores at random).
    """
    folder = model_path(path)
    if is_adapter(folder):
        return load_adapter(folder, head, num_labels=num_labels, pooling=pooling, device=device, dtype=dtype)
    check_model_folder(folder)
    model, new = assemble(folder, head, num_labels=num_labels, pooling=pooling)
    if new and trained:
        raise UserError(f"{model_name(folder)}: its weights hold no trained {_head_of(model)} head "
                        f"(no {_names(new)}); fine-tune it first")
    if new:
        log.info("%s: new %s head, initialised afresh: %s", folder, _head_of(model), _names(new))
    return model.to(resolve_device(device), dtype).eval()


def assemble(folder: Path, head: str | None, *, num_labels: int | None = None, pooling: str | None = None):
    """The model of a folder (not an adapter) with the head asked for, and the keys of a head that
    was not saved and so starts afresh."""
    config = ModelConfig.load(folder / "config.json")
    state = read_state_dict(folder)
    saved = saved_head(state)
    saved_pooling = config.extra.pop("embedding_pooling", None)
    if saved == "encoder" and saved_pooling:
        saved = "embedding"
    head = head or saved
    if head not in HEADS:
        raise UserError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    if head in LABELLED_HEADS and saved == head:
        labels = state[LABELLED_HEADS[head]].shape[0]
        if num_labels is not None and num_labels != labels:
            raise UserError(f"{model_name(folder)}: the classifier has {labels} labels, not {num_labels}")
        if head == "classification" and pooling is not None and pooling != config.classifier_pooling:
            raise UserError(f"{model_name(folder)}: the classifier pools with {config.classifier_pooling!r}, not {pooling!r}")
        config.num_labels = labels
    elif head in LABELLED_HEADS:  # a new head: the folder's label names (another head's, or none) are not its
        config.num_labels = config.num_labels if num_labels is None else num_labels
        config.id2label = None
        if head == "classification":
            config.classifier_pooling = pooling or config.classifier_pooling
    config.check()
    options = {"pooling": pooling or saved_pooling or "mean"} if head == "embedding" else {}
    model = HEADS[head](config, **options).init_weights()

    expected = model.state_dict()
    fresh = {key for key in expected if _head_keys(key)} if head != saved else set()
    dropped = {key for key in state if _head_keys(key)} if head != saved else set()
    if model.bert.pooler is None:  # e.g. a bare BertModel saved with its (unused) pooler
        dropped |= {key for key in state if key.startswith("bert.pooler.")}
    missing = set(expected) - set(state) - fresh - {TIED}
    unexpected = set(state) - set(expected) - dropped
    if missing or unexpected:
        problems = [f"missing {_names(missing)}"] * bool(missing) + [f"unexpected {_names(unexpected)}"] * bool(unexpected)
        raise UserError(f"{model_name(folder)}: not a DNABERT-2 checkpoint of this configuration: {'; '.join(problems)}")
    for key, value in state.items():
        if key in expected and value.shape != expected[key].shape:
            raise UserError(f"{model_name(folder)}: {key} has shape {tuple(value.shape)} in the weights but "
                            f"{tuple(expected[key].shape)} for config.json")
    if (isinstance(model, DNABertForMaskedLM) and TIED in state
            and not torch.equal(state[TIED].to(state[EMBEDDINGS].dtype), state[EMBEDDINGS])):
        # The model has one tensor for both; loading would keep the decoder's as the input embeddings.
        raise UserError(f"{model_name(folder)}: its MLM decoder weight differs from its word embeddings, which "
                        f"DNABERT-2 ties (load it with head='encoder' to leave the decoder out)")
    model.load_state_dict({key: value for key, value in state.items() if key in expected}, strict=False)
    if isinstance(model, DNABertForMaskedLM):
        model.tie_weights()
    tokenizer_file = folder / "tokenizer.json"
    if tokenizer_file.is_file():
        check_tokenizer(load_tokenizer(tokenizer_file), config, source=str(tokenizer_file))
    return model, fresh - set(state)


def save_model(model: torch.nn.Module, out, tokenizer: Tokenizer | str | Path | None = None) -> Path:
    """Write a model folder: model.safetensors, config.json and, given a tokenizer, tokenizer.json with
    the tokenizer_config.json and special_tokens_map.json that transformers' AutoTokenizer reads.
    Each file is written under a temporary name and renamed."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    model = _unwrap(model)
    head = _head_of(model)
    if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
        tokenizer = load_tokenizer(tokenizer)
    if tokenizer is not None:
        check_tokenizer(tokenizer, model.config, source="tokenizer")
    # The decoder shares the word-embedding tensor: safetensors keeps one copy, as transformers does.
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items() if key != TIED}
    with atomic_output(out / "model.safetensors") as tmp:
        save_file(state, tmp, metadata={"format": "pt"})

    if tokenizer is None:  # a tokenizer left from an earlier model in this folder would not fit this one
        for name in TOKENIZER_FILES:
            (out / name).unlink(missing_ok=True)
    else:
        save_tokenizer_files(tokenizer, out)

    config = model.config.to_dict()
    if isinstance(model, DNABertForEmbedding):
        config["embedding_pooling"] = model.pooling
    if isinstance(model, (DNABertForSequenceClassification, DNABertForBaseClassification)) and model.config.id2label is None:
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(model.config.num_labels)}
    _write_json(out / "config.json", {"architectures": [ARCHITECTURES[head]], **config})
    return out


def save_tokenizer_files(tokenizer: Tokenizer, out: Path) -> None:
    """tokenizer.json, and the tokenizer_config.json and special_tokens_map.json that transformers'
    AutoTokenizer reads (without them it has no [PAD] or [MASK])."""
    save_tokenizer(tokenizer, out / "tokenizer.json")
    names = dict(zip(("unk_token", "cls_token", "sep_token", "pad_token", "mask_token"), SPECIAL_TOKENS))
    _write_json(out / "special_tokens_map.json", names)
    _write_json(out / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast", **names})


def _write_json(path: Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n")

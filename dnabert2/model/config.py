"""The model configuration: the fields of the released DNABERT-2 config.json, named presets, and the
checks that turn an impossible or foreign configuration into a clear error."""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

# What folders written here declare. Not "bert", the released files' type: transformers' AutoModel
# would take such a folder for a plain BERT and silently initialise its attention and MLP afresh,
# where an unknown type is a clear refusal. dnabert2.load_model reads both.
MODEL_TYPE = "dnabert2"

# The config.json "architectures" of each head, as the released files and transformers name them.
ARCHITECTURES = {"encoder": "BertModel", "embedding": "BertModel", "mlm": "BertForMaskedLM",
                 "classification": "BertForSequenceClassification", "dense": "DNABertForBaseClassification"}

# Keys of a released config.json that describe Hugging Face plumbing, not the network.
IGNORED_KEYS = {
    "_name_or_path", "auto_map", "architectures", "model_type", "transformers_version", "torch_dtype", "dtype",
    "use_cache", "gradient_checkpointing", "position_embedding_type", "pad_token_id", "problem_type",
    "return_dict", "output_hidden_states", "output_attentions", "dnabert2_version", "label2id",
}


@dataclass
class ModelConfig:
    vocab_size: int = 4096
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.0
    layer_norm_eps: float = 1e-12
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    # ALiBi needs no position table; the released code precomputes its bias for this many positions
    # and grows it on demand. Kept for config.json compatibility: our attention has no length limit.
    alibi_starting_size: int = 512
    max_position_embeddings: int = 512
    num_labels: int = 2
    id2label: dict[int, str] | None = None
    classifier_dropout: float | None = None
    # "cls": the released pooler (dense + tanh on [CLS]); "mean": the mean of the last hidden states.
    classifier_pooling: str = "cls"
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def check(self) -> "ModelConfig":
        positive = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "type_vocab_size", "num_labels")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"model config: {name} must be a positive integer, not {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise UserError(f"model config: hidden_size {self.hidden_size} is not divisible by "
                            f"num_attention_heads {self.num_attention_heads}")
        if self.hidden_act not in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
            raise UserError(f"model config: hidden_act {self.hidden_act!r} is not supported (gelu, gelu_new, "
                            "gelu_pytorch_tanh)")
        if self.classifier_pooling not in ("cls", "mean"):
            raise UserError(f"model config: classifier_pooling must be 'cls' or 'mean', not {self.classifier_pooling!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, name)
            if not (value is None and name == "classifier_dropout") and not (
                    isinstance(value, (int, float)) and 0 <= value < 1):
                raise UserError(f"model config: {name} must be in [0, 1), not {value!r}")
        if not isinstance(self.layer_norm_eps, (int, float)) or not self.layer_norm_eps > 0:
            raise UserError(f"model config: layer_norm_eps must be a positive number, not {self.layer_norm_eps!r}")
        if self.id2label is not None and sorted(self.id2label) != list(range(self.num_labels)):
            raise UserError(f"model config: id2label must name labels 0..{self.num_labels - 1}, "
                            f"not {sorted(self.id2label)}")
        return self

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        if data["id2label"] is None:
            del data["id2label"]
        else:
            data["label2id"] = {label: int(i) for i, label in data["id2label"].items()}
        return {"model_type": MODEL_TYPE, **data, **self.extra}

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "ModelConfig":
        model_type = data.get("model_type", "bert")
        if model_type not in ("bert", MODEL_TYPE):
            raise UserError(f"{source}: model_type {model_type!r} is not a DNABERT-2 (ALiBi BERT) model")
        # Other models of this project (the CNN baseline) and of transformers declare their own.
        architectures = data.get("architectures") or []
        ours = set(ARCHITECTURES.values())
        if not isinstance(architectures, list) or (architectures and not ours.intersection(map(str, architectures))):
            raise UserError(f"{source}: architectures {architectures} is not a DNABERT-2 (ALiBi BERT) model")
        if data.get("position_embedding_type", "absolute") not in ("absolute", "alibi"):
            raise UserError(f"{source}: position_embedding_type {data['position_embedding_type']!r} is not ALiBi")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        if known.get("id2label") is not None:
            try:
                known["id2label"] = {int(i): label for i, label in known["id2label"].items()}
            except (AttributeError, TypeError, ValueError):
                raise UserError(f"{source}: id2label must map label numbers to names") from None
            known.setdefault("num_labels", len(known["id2label"]))
        extra = {k: v for k, v in data.items() if k not in names and k not in IGNORED_KEYS}
        try:
            return cls(**known, extra=extra).check()
        except TypeError as error:
            raise UserError(f"{source}: {error}") from None

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path}: not a JSON config ({error})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: not a JSON object")
        return cls.from_dict(data, str(path))


# Named sizes. tiny runs the tests and the bundled example on a CPU; base is DNABERT-2-117M.
PRESETS = {
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512),
    "small": dict(hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def preset(name: str, vocab_size: int = 4096, **overrides) -> ModelConfig:
    """A named configuration, e.g. preset("base") is the 117 M-parameter DNABERT-2 encoder."""
    if name not in PRESETS:
        raise UserError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return ModelConfig(vocab_size=vocab_size, **{**PRESETS[name], **overrides}).check()

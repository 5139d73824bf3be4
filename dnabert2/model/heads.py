"""The models users call: the bare encoder, masked LM, sequence classification, per-base
classification (dense) and sequence embeddings.

Each takes padded (batch, length) input_ids with a right-padded attention_mask, as a Hugging Face
model does, packs the real tokens, runs the encoder on them, and returns a ModelOutput.
`forward_packed` skips the packing for callers (pretraining, scanning) that build packed batches.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..settings import POOLINGS
from .config import ModelConfig
from .layers import BertModel, pack, unpack


@dataclass
class ModelOutput:
    last_hidden_state: torch.Tensor | None = None  # (batch, length, hidden), zeros at padding
    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None  # (batch, hidden) from DNABertForEmbedding


class _Model(nn.Module):
    """Shared plumbing: weight initialisation, the attention backend switch, packing."""

    def __init__(self, config: ModelConfig, pooler: bool = False):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, pooler=pooler)

    def init_weights(self):
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        return self

    @property
    def attention_backend(self) -> str:
        return self.bert.attention_backend

    @attention_backend.setter
    def attention_backend(self, backend: str):
        """"auto" (Triton on CUDA, PyTorch elsewhere), "triton" or "torch"."""
        self.bert.attention_backend = backend

    def encode(self, input_ids, attention_mask=None, token_type_ids=None):
        """Packed hidden states (total, hidden) and what is needed to unpack them."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if attention_mask.shape != input_ids.shape:
            raise UserError(f"attention_mask {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}")
        # Ids are checked here, not in the embedding lookup: on a GPU an id out of range is a device-side
        # assert that leaves the CUDA context unusable. Read with the mask, in pack's one wait for the
        # host; the packed entry (the scanners', fine-tuning's) trusts its ids.
        problems = [(f"{name} must lie in [0, {size}), this model's {what}",
                     ((ids < 0) | (ids >= size)).logical_and(attention_mask.bool()).any())
                    for name, ids, size, what in (
                        ("input_ids", input_ids, self.config.vocab_size, "vocabulary (ids of another tokenizer?)"),
                        ("token_type_ids", token_type_ids, self.config.type_vocab_size, "token types"))
                    if ids is not None]
        indices, cu_seqlens, max_seqlen = pack(attention_mask, problems)
        types = None if token_type_ids is None else token_type_ids.flatten()[indices]
        hidden = self.bert.forward_packed(input_ids.flatten()[indices], cu_seqlens, max_seqlen, types)
        return hidden, indices, cu_seqlens


class DNABertModel(_Model):
    """The bare encoder: last_hidden_state only."""

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden, indices, _ = self.encode(input_ids, attention_mask, token_type_ids)
        return ModelOutput(last_hidden_state=unpack(hidden, indices, *input_ids.shape))


def gelu(config: ModelConfig):
    return nn.GELU(approximate="none" if config.hidden_act == "gelu" else "tanh")


class PredictionHead(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.transform = nn.Sequential()
        self.transform.add_module("dense", nn.Linear(config.hidden_size, config.hidden_size))
        self.transform.add_module("act", gelu(config))
        self.transform.add_module("LayerNorm", nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps))
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, x):
        return self.decoder(self.transform(x))


class DNABertForMaskedLM(_Model):
    """Masked-LM head tied to the word embeddings. With labels (−100 = not scored), the vocabulary
    projection runs on the scored tokens only and logits hold just those rows."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.cls = nn.Module()
        self.cls.predictions = PredictionHead(config)
        self.tie_weights()

    def tie_weights(self):
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def head(self, hidden, labels=None):
        if labels is None:
            return self.cls.predictions(hidden), None
        # The scored positions are found where the labels are (the CPU, in pretraining) and indexed on
        # the device: a boolean mask there would make the host wait for the GPU.
        scored = (labels != -100).nonzero().squeeze(1).to(hidden.device, non_blocking=True)
        wanted = labels.to(hidden.device, non_blocking=True)[scored]
        logits = self.cls.predictions(hidden[scored])
        return logits, F.cross_entropy(logits.float(), wanted)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, cu_seqlens=None,
                max_seqlen=None):
        """Padded (batch, length) input_ids, or packed (total,) ones with cu_seqlens and max_seqlen (the
        form pretraining uses; through forward so that DistributedDataParallel sees the call)."""
        if cu_seqlens is not None:
            return self.forward_packed(input_ids, cu_seqlens, max_seqlen, labels)
        hidden, indices, _ = self.encode(input_ids, attention_mask, token_type_ids)
        if labels is not None:
            logits, loss = self.head(hidden, labels.flatten()[indices])
            return ModelOutput(logits=logits, loss=loss)
        logits, _ = self.head(hidden)
        return ModelOutput(logits=unpack(logits, indices, *input_ids.shape))

    def forward_packed(self, input_ids, cu_seqlens, max_seqlen, labels=None):
        logits, loss = self.head(self.bert.forward_packed(input_ids, cu_seqlens, max_seqlen), labels)
        return ModelOutput(logits=logits, loss=loss)


def pool(hidden, cu_seqlens, pooling: str):
    """One vector per sequence from packed hidden states (total, hidden) → (batch, hidden): the mean or
    the elementwise max of its states ([CLS] and [SEP] included), or its [CLS] state."""
    if pooling not in POOLINGS:
        raise UserError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    if pooling == "cls":
        return hidden[cu_seqlens[:-1].long()]
    lengths = cu_seqlens.diff()
    sequence = torch.repeat_interleave(torch.arange(lengths.numel(), device=hidden.device), lengths,
                                       output_size=hidden.shape[0])
    if pooling == "max":
        empty = hidden.new_empty((lengths.numel(), hidden.shape[1]))
        return empty.scatter_reduce_(0, sequence[:, None].expand_as(hidden), hidden, "amax", include_self=False)
    # Summed in fp32: a bf16 running sum over hundreds of tokens loses the mean's low bits.
    sums = hidden.new_zeros((lengths.numel(), hidden.shape[1]), dtype=torch.float32).index_add_(0, sequence, hidden.float())
    return (sums / lengths[:, None]).to(hidden.dtype)


class DNABertForSequenceClassification(_Model):
    """The released classifier: [CLS] → pooler (dense + tanh) → dropout → linear; or, with
    classifier_pooling "mean", the mean hidden state → dropout → linear."""

    def __init__(self, config: ModelConfig):
        super().__init__(config, pooler=config.classifier_pooling == "cls")
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def classify(self, hidden, cu_seqlens, labels=None):
        if self.bert.pooler is not None:
            summary = self.bert.pooler(hidden[cu_seqlens[:-1].long()])
        else:
            summary = pool(hidden, cu_seqlens, "mean")
        logits = self.classifier(self.dropout(summary))
        if labels is None:
            return ModelOutput(logits=logits)
        if self.config.num_labels == 1:
            loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
        else:
            loss = F.cross_entropy(logits.float(), labels)
        return ModelOutput(logits=logits, loss=loss)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, cu_seqlens=None,
                max_seqlen=None):
        """Padded (batch, length) input_ids, or packed (total,) ones with cu_seqlens and max_seqlen."""
        if cu_seqlens is not None:
            return self.forward_packed(input_ids, cu_seqlens, max_seqlen, labels)
        hidden, _, cu_seqlens = self.encode(input_ids, attention_mask, token_type_ids)
        return self.classify(hidden, cu_seqlens, labels)

    def forward_packed(self, input_ids, cu_seqlens, max_seqlen, labels=None):
        hidden = self.bert.forward_packed(input_ids, cu_seqlens, max_seqlen)
        return self.classify(hidden, cu_seqlens.to(hidden.device, non_blocking=True), labels)


class DNABertForEmbedding(_Model):
    """One vector per sequence, pooled from its hidden states (see `pool`)."""

    def __init__(self, config: ModelConfig, pooling: str = "mean"):
        super().__init__(config)
        if pooling not in POOLINGS:
            raise UserError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        self.pooling = pooling

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden, indices, cu_seqlens = self.encode(input_ids, attention_mask, token_type_ids)
        vectors = pool(hidden, cu_seqlens, self.pooling)
        return ModelOutput(last_hidden_state=unpack(hidden, indices, *input_ids.shape), embeddings=vectors)


class BaseHead(nn.Module):
    """Per-base logits from token states. A BPE token spans 1 to ~16 bases: each base takes its token's
    state (projected to a few channels) plus a convolution over the one-hot bases around it, which
    tells apart the bases of one token and sees motifs to the base; then a short convolution to
    logits. A few thousand multiply-adds per base, against the encoder's ~100 thousand (tiny preset)."""

    channels = 64
    width = 9

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.project = nn.Linear(config.hidden_size, self.channels)
        self.bases = nn.Conv1d(4, self.channels, self.width, padding=self.width // 2)
        self.act = gelu(config)
        self.out = nn.Conv1d(self.channels, config.num_labels, 3, padding=1)

    def forward(self, hidden, token_of_base, bases, base_mask=None):
        """hidden (tokens, H) packed; token_of_base (B, L) rows of hidden; bases (B, L) codes 0-3 = ACGT,
        4 = anything else; base_mask (B, L) False past a shorter sequence's end → logits (B, L, K)."""
        tokens = self.project(hidden)[token_of_base].transpose(1, 2)  # (B, C, L)
        onehot = F.one_hot(bases, 5)[..., :4].to(tokens.dtype).transpose(1, 2)  # (B, 4, L)
        features = self.act(tokens + self.bases(onehot))
        if base_mask is not None:  # the last bases read zeros past the end, as they do alone, not padding's state
            features = features * base_mask[:, None, :].to(features.dtype)
        return self.out(features).transpose(1, 2)


class DNABertForBaseClassification(_Model):
    """A class for every base of a sequence (none, donor, acceptor; none, TSS; …): the encoder's token
    states brought back to the bases they span, through BaseHead."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.base_head = BaseHead(config)

    def forward(self, input_ids, token_of_base, bases, attention_mask=None, labels=None, class_weights=None,
                cu_seqlens=None, max_seqlen=None, base_mask=None):
        """Padded (batch, length) input_ids, or packed (total,) ones with cu_seqlens and max_seqlen.
        token_of_base (batch, bases): each base's token, counted from its sequence's first token
        ([CLS] is 0); bases (batch, bases): 0-3 for ACGT, 4 otherwise; base_mask (batch, bases) False
        past the end of a sequence shorter than the batch's longest. labels (batch, bases), -100 for
        bases not scored; class_weights (K,) weigh the cross-entropy, for classes as rare as sites."""
        if cu_seqlens is None:
            hidden, _, cu_seqlens = self.encode(input_ids, attention_mask)
        else:
            hidden = self.bert.forward_packed(input_ids, cu_seqlens, max_seqlen)
        rows = cu_seqlens[:-1].to(hidden.device, torch.int64, non_blocking=True)[:, None] + token_of_base
        logits = self.base_head(self.dropout(hidden), rows, bases, base_mask)
        if labels is None:
            return ModelOutput(logits=logits)
        weights = None if class_weights is None else class_weights.float()
        loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), weight=weights, ignore_index=-100)
        return ModelOutput(logits=logits, loss=loss)


HEADS = {
    "encoder": DNABertModel,
    "mlm": DNABertForMaskedLM,
    "classification": DNABertForSequenceClassification,
    "embedding": DNABertForEmbedding,
    "dense": DNABertForBaseClassification,
}


def build_model(config: ModelConfig, head: str = "mlm", **options) -> nn.Module:
    """A freshly initialised model with the given head."""
    if head not in HEADS:
        raise UserError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    return HEADS[head](config.check(), **options).init_weights()

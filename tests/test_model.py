"""The encoder, its heads and model folders: the released DNABERT-2-117M layout loads as it is and
computes what the released code computes; our own folders round-trip; bad checkpoints are refused."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from conftest import DATA, SHARED
from dnabert2 import load_model, load_tokenizer
from dnabert2.devices import autocast, data_workers, inference_weights, overlapped, resolve_device
from dnabert2.errors import UserError
from dnabert2.model import ModelConfig, build_model, check_tokenizer, preset, save_model
from dnabert2.vocab import train_tokenizer
from reference import released_forward

LAYOUT = json.loads((SHARED / "official_117m_state_dict_layout.json").read_text())
RELEASED_TOKENIZER = DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def released_state(config: dict, classifier_labels: int = 0, seed: int = 0) -> dict:
    """Random weights under every key of the released layout, with shapes scaled to `config`.
    The decoder shares the word embeddings, as in the released files."""
    base = LAYOUT["config"]
    sizes = {base["hidden_size"]: config["hidden_size"], 3 * base["hidden_size"]: 3 * config["hidden_size"],
             base["intermediate_size"]: config["intermediate_size"],
             2 * base["intermediate_size"]: 2 * config["intermediate_size"],
             base["vocab_size"]: config["vocab_size"], base["type_vocab_size"]: config["type_vocab_size"]}
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in LAYOUT["state_dict_keys_and_shapes"]:
        if ".layer." in key and int(key.split(".layer.")[1].split(".")[0]) >= config["num_hidden_layers"]:
            continue
        shape = [sizes[n] for n in shape]
        noise = torch.randn(shape, generator=generator) * 0.05
        state[key] = noise + 1 if "LayerNorm.weight" in key or "layernorm.weight" in key else noise
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    if classifier_labels:
        for key in [k for k in state if k.startswith("cls.")]:
            del state[key]
        hidden = config["hidden_size"]
        state["bert.pooler.dense.weight"] = torch.randn(hidden, hidden, generator=generator) * 0.05
        state["bert.pooler.dense.bias"] = torch.randn(hidden, generator=generator) * 0.05
        state["classifier.weight"] = torch.randn(classifier_labels, hidden, generator=generator) * 0.05
        state["classifier.bias"] = torch.randn(classifier_labels, generator=generator) * 0.05
    return state


def released_folder(path, config: dict, state: dict, weights: str = "pytorch_model.bin"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    if weights == "pytorch_model.bin":
        torch.save(state, path / weights)
    else:
        save_file({k: v.contiguous() for k, v in state.items() if k != "cls.predictions.decoder.weight"}, path / weights)
    if config["vocab_size"] == 4096:
        (path / "tokenizer.json").write_bytes(RELEASED_TOKENIZER.read_bytes())
    return path


def small_config(**changes) -> dict:
    return {**LAYOUT["config"], "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 96,
            "num_hidden_layers": 2, **changes}


def dna_batch(tokenizer, lengths=(300, 120, 41)):
    """Real C. elegans sequence, tokenised and right-padded as a DataLoader would."""
    from dnabert2.sequences import Fasta

    with Fasta(DATA / "genomes" / "ce1pct.fa.gz") as fasta:
        contig = next(iter(fasta.lengths))
        sequences = [fasta.fetch(contig, 1000 * i, 1000 * i + n) for i, n in enumerate(lengths)]
    encodings = tokenizer.encode_batch(sequences)
    width = max(len(e.ids) for e in encodings)
    ids = torch.full((len(encodings), width), 3)
    mask = torch.zeros_like(ids)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = torch.tensor(encoding.ids)
        mask[row, : len(encoding.ids)] = 1
    return ids, mask


def pack_lengths(mask):
    lengths = mask.sum(1)
    return torch.tensor([0, *lengths.cumsum(0).tolist()], dtype=torch.int32), int(lengths.max())


def assert_close(got, want, tolerance=1e-4):
    error = (got.double() - want).abs().max().item()
    assert error <= tolerance * max(1.0, want.abs().max().item()), f"max error {error:.3g}"


def test_base_preset_has_the_released_layout():
    model = build_model(preset("base"), "mlm")
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == dict(LAYOUT["state_dict_keys_and_shapes"])
    assert sum(p.numel() for p in model.parameters()) == 117_074_176


def test_released_117m_checkpoint_gives_the_released_outputs(tmp_path):
    config = LAYOUT["config"]
    state = released_state(config)
    folder = released_folder(tmp_path / "DNABERT-2-117M", config, state)
    tokenizer = load_tokenizer(folder)
    ids, mask = dna_batch(tokenizer)
    want = released_forward(state, config, ids, mask)

    with torch.no_grad():
        mlm = load_model(folder)
        encoder = load_model(folder, head="encoder")
        assert_close(encoder(ids, attention_mask=mask).last_hidden_state, want["hidden"])
        logits = mlm(ids, attention_mask=mask).logits
    real = mask.bool()
    assert_close(logits[real], want["mlm"][real])
    assert not mlm.training


def test_released_classifier_loads_from_safetensors(tmp_path):
    config = small_config(id2label={"0": "none", "1": "donor", "2": "acceptor"})
    state = released_state(config, classifier_labels=3, seed=1)
    folder = released_folder(tmp_path / "splice", config, state, weights="model.safetensors")
    ids, mask = dna_batch(load_tokenizer(RELEASED_TOKENIZER))
    want = released_forward(state, config, ids, mask)

    model = load_model(folder)
    with torch.no_grad():
        assert_close(model(ids, attention_mask=mask).logits, want["classifier"])
        assert_close(load_model(folder, head="encoder")(ids, mask).last_hidden_state, want["hidden"])
    assert model.config.id2label == {0: "none", 1: "donor", 2: "acceptor"}
    with pytest.raises(UserError, match="classifier has 3 labels, not 2"):
        load_model(folder, num_labels=2)
    # A new head of other labels starts without the saved classifier's label names.
    for labels in (2, 4):
        fresh = load_model(folder, head="dense", num_labels=labels)
        assert fresh.config.num_labels == labels and fresh.config.id2label is None


def test_missing_and_unexpected_keys_are_named(tmp_path):
    config = small_config()
    state = released_state(config)
    del state["bert.encoder.layer.1.mlp.wo.bias"]
    state["bert.embeddings.position_embeddings.weight"] = torch.zeros(512, 64)
    folder = released_folder(tmp_path / "m", config, state)
    with pytest.raises(UserError) as error:
        load_model(folder)
    message = str(error.value)
    assert "missing bert.encoder.layer.1.mlp.wo.bias" in message
    assert "unexpected bert.embeddings.position_embeddings.weight" in message


def test_shape_mismatch_is_named(tmp_path):
    state = released_state(small_config())
    folder = released_folder(tmp_path / "m", small_config(intermediate_size=128), state)
    with pytest.raises(UserError, match=r"gated_layers.weight has shape \(192, 64\) in the weights but \(256, 64\)"):
        load_model(folder)


def test_an_untied_decoder_is_refused_as_a_masked_lm_and_left_out_of_the_encoder(tmp_path):
    config = small_config()
    state = released_state(config)
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"] * 2
    folder = released_folder(tmp_path / "m", config, state)
    with pytest.raises(UserError, match="its MLM decoder weight differs from its word embeddings, which DNABERT-2 ties"):
        load_model(folder)
    encoder = load_model(folder, head="encoder")
    assert torch.equal(encoder.bert.embeddings.word_embeddings.weight, state["bert.embeddings.word_embeddings.weight"])


def test_other_architectures_are_refused(tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    BertForMaskedLM(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64)).save_pretrained(tmp_path / "hf-bert")
    with pytest.raises(UserError, match="not a DNABERT-2 checkpoint.*missing .*Wqkv.*unexpected"):
        load_model(tmp_path / "hf-bert")
    (tmp_path / "hf-bert" / "config.json").write_text(json.dumps({"model_type": "roberta", "hidden_size": 32}))
    with pytest.raises(UserError, match="model_type 'roberta' is not a DNABERT-2"):
        load_model(tmp_path / "hf-bert")


def test_unreadable_folders_are_refused(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="absent: no such folder, nor a Hugging Face Hub id"):
        load_model(tmp_path / "absent")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(UserError, match="models/mymodl: no such folder.*the folder models/ here makes it a path"):
        load_model("models/mymodl")
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="file: not a model folder"):
        load_model(tmp_path / "file")
    folder = tmp_path / "m"
    folder.mkdir()
    with pytest.raises(UserError, match="not a model folder \\(no config.json in it\\)"):
        load_model(folder)
    (folder / "checkpoints").mkdir()  # a pretraining stopped before it wrote its model
    with pytest.raises(UserError, match="a pretraining stopped early, which `dnabert2 pretrain --resume` goes on"):
        load_model(folder)
    (folder / "checkpoints").rmdir()
    (folder / "task.json").write_text("{}")
    with pytest.raises(UserError, match="the data of a task"):
        load_model(folder)
    (folder / "config.json").write_text(json.dumps(small_config()))
    with pytest.raises(UserError, match="no model weights there"):
        load_model(folder)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="cannot read the weights"):
        load_model(folder)


def test_tokenizer_must_match_the_model(tmp_path):
    config = small_config(vocab_size=64)
    folder = released_folder(tmp_path / "m", config, released_state(config))
    (folder / "tokenizer.json").write_bytes(RELEASED_TOKENIZER.read_bytes())
    with pytest.raises(UserError, match="vocabulary of 4096 tokens does not match the model's 64"):
        load_model(folder)
    # Same size, other tokens: vocabularies learned from different sequences.
    ours = train_tokenizer(["ACGTTGCAAGGCTTAACCGT" * 50, "TTGACCATGGCA" * 80], vocab_size=20)
    theirs = train_tokenizer(["GGGGCCCCAAAATTTT" * 64, "CATCATGATGAT" * 90], vocab_size=20)
    assert ours.get_vocab_size() == theirs.get_vocab_size() == 20
    theirs.save(str(folder / "tokenizer.json"))
    config = ModelConfig.from_dict(small_config(vocab_size=20))
    with pytest.raises(UserError, match="differs from the model's own"):
        check_tokenizer(ours, config, folder)
    check_tokenizer(theirs, config, folder)
    # As many tokens, numbered past the embeddings: an index error deep in the model before.
    vocab = json.loads((folder / "tokenizer.json").read_text())
    vocab["model"]["vocab"] = {token: i + 3000 * (i >= 9) for token, i in vocab["model"]["vocab"].items()}
    (folder / "shifted.json").write_text(json.dumps(vocab))
    with pytest.raises(UserError, match="token ids reach 3019, past the model's 20 embeddings"):
        check_tokenizer(Tokenizer.from_file(str(folder / "shifted.json")), config)


def test_own_folders_round_trip(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = load_tokenizer(RELEASED_TOKENIZER)
    model = build_model(preset("tiny"), "mlm").eval()
    folder = save_model(model, tmp_path / "tiny", tokenizer)
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    assert "cls.predictions.decoder.weight" not in load_file(folder / "model.safetensors")
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]

    ids, mask = dna_batch(tokenizer)
    with torch.no_grad():
        again = load_model(folder)
        assert torch.equal(again(ids, mask).logits, model(ids, mask).logits)
        assert again.cls.predictions.decoder.weight is again.bert.embeddings.word_embeddings.weight

        # Fine-tuning starts from here: a new classifier on the pretrained encoder.
        classifier = load_model(folder, head="classification", num_labels=3)
        assert classifier(ids, mask).logits.shape == (3, 3)
        hidden = model.bert.forward_packed(ids[mask.bool()], *pack_lengths(mask))
        with pytest.raises(UserError, match="max_seqlen goes with cu_seqlens"):  # not a TypeError deep inside
            model(ids[mask.bool()], cu_seqlens=pack_lengths(mask)[0])
        first = torch.tensor([0, *mask.sum(1).cumsum(0)[:-1].tolist()])
        cls = load_model(folder, head="embedding", pooling="cls")(ids, mask).embeddings
        torch.testing.assert_close(cls, hidden[first])
        mean = load_model(folder, head="embedding", pooling="mean")(ids, mask).embeddings
        torch.testing.assert_close(mean, torch.stack([h.mean(0) for h in hidden.split(mask.sum(1).tolist())]))

    hf = AutoTokenizer.from_pretrained(folder)
    assert (hf.cls_token_id, hf.sep_token_id, hf.pad_token_id, hf.mask_token_id) == (1, 2, 3, 4)
    assert hf("ACGTACGT")["input_ids"] == tokenizer.encode("ACGTACGT").ids


def test_transformers_refuses_our_folders_instead_of_loading_half_a_model(tmp_path):
    """Declared as model_type bert, a folder loaded into transformers' plain BertModel with attention
    and MLP weights initialised afresh (a warning only). Declared as dnabert2, AutoModel refuses it;
    the tokenizer still loads with AutoTokenizer, and dnabert2.load_model reads the folder."""
    from transformers import AutoModel, AutoTokenizer

    folder = save_model(build_model(preset("tiny"), "classification"), tmp_path / "m",
                        load_tokenizer(RELEASED_TOKENIZER))
    assert json.loads((folder / "config.json").read_text())["model_type"] == "dnabert2"
    with pytest.raises(ValueError, match="model type `dnabert2`"):
        AutoModel.from_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder)("ACGT")["input_ids"][0] == 1
    assert type(load_model(folder)).__name__ == "DNABertForSequenceClassification"


def test_classifier_round_trip_keeps_labels_and_pooling(tmp_path):
    config = preset("tiny", vocab_size=64, num_labels=3, classifier_pooling="mean")
    model = build_model(config, "classification").eval()
    folder = save_model(model, tmp_path / "clf")
    again = load_model(folder)
    ids = torch.randint(5, 64, (2, 9))
    assert again.bert.pooler is None and again.config.num_labels == 3
    assert torch.equal(again(ids).logits, model(ids).logits)


def test_a_sequence_does_not_depend_on_its_batch_mates():
    model = build_model(preset("tiny", vocab_size=64), "encoder").eval()
    generator = torch.Generator().manual_seed(3)
    alone = torch.randint(5, 64, (1, 17), generator=generator)
    with torch.no_grad():
        want = model(alone).last_hidden_state[0]
        for width, mates in ((17, 1), (40, 4), (90, 7)):
            ids = torch.randint(5, 64, (mates + 1, width), generator=generator)
            mask = (torch.arange(width)[None, :] < torch.randint(1, width + 1, (mates + 1, 1), generator=generator)).long()
            ids[2 % (mates + 1), :17], mask[2 % (mates + 1)] = alone[0], (torch.arange(width) < 17).long()
            got = model(ids, attention_mask=mask).last_hidden_state[2 % (mates + 1)]
            assert torch.allclose(got[:17], want, atol=1e-5)
            assert not got[17:].any()


@pytest.mark.skipif(not (INTERPRETED or torch.cuda.is_available()), reason="Triton cannot run here")
def test_kernel_path_equals_pytorch_path_for_the_whole_model():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = preset("tiny", vocab_size=64, hidden_size=64, num_attention_heads=2, hidden_dropout_prob=0.0)
    model = build_model(config, "mlm").to(device)
    generator = torch.Generator().manual_seed(5)
    ids = torch.randint(5, 64, (3, 70), generator=generator).to(device)
    mask = (torch.arange(70)[None, :] < torch.tensor([[70], [1], [33]])).long().to(device)
    labels = torch.where(torch.rand(ids.shape, generator=generator).to(device) < 0.3, ids, -100)
    results = {}
    for backend in ("torch", "triton"):
        model.zero_grad()
        model.attention_backend = backend
        out = model(ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        results[backend] = (out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(results["triton"][0], results["torch"][0], rtol=1e-4, atol=1e-4)
    for name, grad in results["torch"][1].items():
        torch.testing.assert_close(results["triton"][1][name], grad, rtol=1e-3, atol=1e-5, msg=name)


def test_bad_configurations_and_inputs():
    with pytest.raises(UserError, match="hidden_size 100 is not divisible by num_attention_heads 12"):
        ModelConfig(hidden_size=100).check()
    with pytest.raises(UserError, match="unknown model preset 'huge'"):
        preset("huge")
    model = build_model(preset("tiny", vocab_size=64), "encoder")
    with pytest.raises(UserError, match="right-padded"):
        model(torch.ones(1, 4, dtype=torch.long) * 5, attention_mask=torch.tensor([[0, 1, 1, 1]]))
    # Ids of another tokenizer: one line, not an IndexError from inside the embedding lookup.
    with pytest.raises(UserError, match=re.escape("input_ids must lie in [0, 64), this model's vocabulary")):
        model(torch.tensor([[1, 64, 2]]))
    with pytest.raises(UserError, match=re.escape("token_type_ids must lie in [0, 2)")):
        model(torch.tensor([[1, 5, 2]]), token_type_ids=torch.tensor([[0, 2, 0]]))
    padded = model(torch.tensor([[1, 5, 2, 999]]), attention_mask=torch.tensor([[1, 1, 1, 0]]))  # padding is no token
    with pytest.raises(UserError, match="ones for the tokens and zeros for the padding, nothing else"):
        model(torch.tensor([[1, 5, 2]]), attention_mask=torch.tensor([[2, 2, 2]]))
    assert padded.last_hidden_state.shape == (1, 4, 128)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_asked_for_without_one(tmp_path):
    with pytest.raises(UserError, match="device cuda was asked for, but"):
        resolve_device("cuda")
    folder = save_model(build_model(preset("tiny", vocab_size=64), "encoder"), tmp_path / "m")
    with pytest.raises(UserError, match="device cuda was asked for"):
        load_model(folder, device="cuda")
    with pytest.raises(UserError, match="device cuda was asked for"):
        load_model(folder, device=torch.device("cuda"))
    assert resolve_device("auto").type == "cpu"


def test_autocast_and_attention_dropout_on_the_pytorch_path():
    ids = torch.randint(5, 64, (3, 20))
    mask = (torch.arange(20)[None, :] < torch.tensor([[20], [6], [13]])).long()
    config = preset("tiny", vocab_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.1)
    model = build_model(config, "encoder").eval()
    with torch.no_grad():
        exact = model(ids, mask).last_hidden_state
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(ids, mask).last_hidden_state
        assert (half.float() - exact).abs().max() < 0.1
        model.train()  # only attention dropout is left to make two passes differ
        assert not torch.equal(model(ids, mask).last_hidden_state, model(ids, mask).last_hidden_state)
        no_dropout = build_model(preset("tiny", vocab_size=64, hidden_dropout_prob=0.0), "encoder").train()
        assert torch.equal(no_dropout(ids, mask).last_hidden_state, no_dropout(ids, mask).last_hidden_state)


def test_checkpoint_variants_that_load(tmp_path):
    config = small_config()
    state = released_state(config)
    ids, mask = dna_batch(load_tokenizer(RELEASED_TOKENIZER))
    want = released_forward(state, config, ids, mask)["hidden"]
    # A bare BertModel saved with its unused pooler (what AutoModel gives), keys without "bert.".
    bare = {k[len("bert."):]: v for k, v in state.items() if k.startswith("bert.")}
    bare["pooler.dense.weight"], bare["pooler.dense.bias"] = torch.zeros(64, 64), torch.zeros(64)
    with torch.no_grad():
        assert_close(load_model(released_folder(tmp_path / "bare", config, bare))(ids, mask).last_hidden_state, want)
        # torch.compile of a DDP-wrapped model prefixes every key twice.
        wrapped = {f"_orig_mod.module.{k}": v for k, v in state.items()}
        assert_close(load_model(released_folder(tmp_path / "wrapped", config, wrapped), head="encoder")(ids, mask)
                     .last_hidden_state, want)


def test_save_model_keeps_a_folder_consistent(tmp_path):
    folder = tmp_path / "m"
    save_model(build_model(preset("tiny"), "mlm"), folder, load_tokenizer(RELEASED_TOKENIZER))
    save_model(build_model(preset("tiny", vocab_size=64), "embedding", pooling="cls"), folder)
    assert not (folder / "tokenizer.json").exists()  # the old 4,096-token tokenizer would not fit
    again = load_model(folder)
    assert type(again).__name__ == "DNABertForEmbedding" and again.pooling == "cls"
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02garbage")
    with pytest.raises(UserError, match="cannot read the weights"):
        load_model(folder)
    with pytest.raises(UserError, match="id2label must map label numbers to names"):
        ModelConfig.from_dict({"id2label": ["a", "b"]})
    with pytest.raises(UserError, match="classifier_dropout must be in"):
        ModelConfig(classifier_dropout=2).check()


ONLY_THE_MODELS_DEPENDENCIES = """
import importlib.abc, importlib.metadata as metadata, sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

def installed_with(names):
    # The distributions pip would install for these: their requirements, recursively.
    found, todo = set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        found.add(name)
        todo += [canonicalize_name(r.name) for r in map(Requirement, requires)
                 if r.marker is None or r.marker.evaluate({"extra": ""})]
    return found

# numpy only because Triton's interpreter, which runs the kernel here without a GPU, computes with it.
kept = installed_with(["torch", "triton", "tokenizers", "safetensors"]) | {"dnabert2", "numpy"}
hidden = {top for top, dists in metadata.packages_distributions().items()
          if not {canonicalize_name(d) for d in dists} & kept}
assert {"pysam", "Bio", "pandas", "peft", "sklearn"} <= hidden, hidden

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, Hide())
import torch
from dnabert2 import load_model, load_tokenizer
from dnabert2.attention import alibi_attention, alibi_slopes

device = sys.argv[2]
model, tokenizer = load_model(sys.argv[1], device=device).eval(), load_tokenizer(sys.argv[1])
ids = torch.tensor([[1, *tokenizer.encode("ACGTTGCAAGGCTTAGCATTGACC", add_special_tokens=False).ids, 2]], device=device)
print(tuple(model(ids).logits.shape))
q = torch.randn(70, 2, 32, device=device)
print(tuple(alibi_attention(q, q, q, torch.tensor([0, 70], device=device), 70, alibi_slopes(2), backend="triton").shape))
"""


def test_the_model_and_kernels_need_only_torch_triton_tokenizers_and_safetensors(tmp_path):
    # Sequence I/O (pysam, Biopython) and the training, scanning and report stacks are hidden.
    folder = save_model(build_model(preset("tiny"), "mlm"), tmp_path / "tiny", load_tokenizer(RELEASED_TOKENIZER))
    # The kernel runs natively on a GPU, else in Triton's interpreter.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    env = {**os.environ} if device == "cuda" else {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run([sys.executable, "-c", ONLY_THE_MODELS_DEPENDENCIES, folder, device], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stderr
    logits, attention = result.stdout.strip().splitlines()[-2:]
    assert logits.startswith("(1, ") and logits.endswith(", 4096)") and attention == "(70, 2, 32)"


def test_data_workers_default_to_the_cores_available_less_the_main_process(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert data_workers(None) == 15 and data_workers(3) == 3 and data_workers(0) == 0
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four torchrun processes share the node's cores
    assert data_workers(None) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert data_workers(None) == 0  # one core: the main process loads


# A worker killed while writing a big batch, after torch's one error for it was lost in an `except
# Exception` (as triton's import loses it): the next read waits for the rest of the batch for good.
_LOST_WORKER = """
import os, signal, sys, threading, time
from torch.utils.data import DataLoader
from dnabert2.devices import watched

sizes = [10, 200 << 20]  # the second batch fills the pipe, and the reader takes it in pieces
loader = iter(DataLoader(sizes, batch_size=None, num_workers=1, collate_fn=lambda n: bytes(n), prefetch_factor=1))
batches = watched(type("Given", (), {"__iter__": lambda self: loader})())
next(batches)
worker, killed = loader._workers[0].pid, threading.Event()

def kill_when_writing():  # once the big batch's first bytes are in the pipe
    while not loader._data_queue._reader.poll():
        time.sleep(0.01)
    os.kill(worker, signal.SIGKILL)
    killed.set()

threading.Thread(target=kill_when_writing).start()
try:
    while not killed.wait(0.01):
        pass
    for _ in range(30):
        time.sleep(0.01)
except Exception:
    print("lost:", sys.exc_info()[1], flush=True)
try:
    next(batches)
except RuntimeError as error:
    print("raised:", error, "| from:", error.__cause__, flush=True)
os._exit(0)  # as the command line does: the loader's shutdown could wait on a lock the worker held
"""


def test_a_watched_loader_raises_for_a_killed_worker_whose_first_error_was_lost():
    result = subprocess.run([sys.executable, "-c", _LOST_WORKER], capture_output=True, text=True, timeout=60)
    lost, raised = result.stdout.splitlines()
    assert lost.startswith("lost: DataLoader worker (pid ") and lost.endswith("is killed by signal: Killed. ")
    assert raised.startswith("raised: DataLoader worker (pid") and "is killed by signal: Killed." in raised


def test_bf16_inference_weights_converted_once_give_autocasts_answers():
    # On a GPU, bf16 inference converts the weights once instead of autocast casting them every batch;
    # the CPU runs both under bf16 autocast to compare.
    torch.manual_seed(0)
    model = build_model(preset("tiny", num_labels=3), "classification").eval()
    ids = torch.randint(5, 4096, (3, 50))
    ids[:, 0], ids[:, -1] = 1, 2
    with torch.inference_mode(), autocast(torch.device("cpu"), "bf16"):
        want = model(ids).logits.float()
        converted = inference_weights(build_model(preset("tiny", num_labels=3), "classification").eval(), "bf16")
        converted.load_state_dict({k: v.to(torch.bfloat16) for k, v in model.state_dict().items()})
        got = converted(ids).logits.float()
    assert {p.dtype for p in converted.parameters()} == {torch.bfloat16}
    assert inference_weights(model, "fp32") is model and next(model.parameters()).dtype == torch.float32
    assert (got - want).abs().max() <= 0.05 * want.abs().max(), (got - want).abs().max()


def test_overlapped_takes_each_item_after_the_next_is_launched_in_order():
    # The scan loop's schedule: the host handles block k while the device runs block k + 1.
    events = []
    overlapped(range(3), lambda i: events.append(("launch", i)) or i * 10,
               lambda i, launched: events.append(("take", i, launched)))
    assert events == [("launch", 0), ("launch", 1), ("take", 0, 0), ("launch", 2), ("take", 1, 10), ("take", 2, 20)]
    overlapped([], None, None)  # nothing to launch, nothing taken


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a GPU check (bench/gpu.sh runs it)")
def test_scanners_queue_their_batches_without_waiting_for_the_gpu():
    import copy
    from pathlib import Path

    from dnabert2.bases.inputs import encode_bases
    from dnabert2.scan.dense import DenseScanner
    from dnabert2.scan.model import Scanner

    tokenizer = load_tokenizer(RELEASED_TOKENIZER)
    generator = torch.Generator().manual_seed(0)
    sequences = ["".join("ACGT"[i] for i in torch.randint(4, (n,), generator=generator)) for n in (400, 300, 380, 400)]
    ids = [[1, *e.ids, 2] for e in tokenizer.encode_batch(sequences, add_special_tokens=False)]
    flat, lengths = np.array([t for row in ids for t in row]), np.array([len(row) for row in ids])
    encoded = encode_bases(tokenizer, sequences)
    torch.manual_seed(0)
    window = build_model(preset("tiny", num_labels=3), "classification").eval()
    dense = build_model(preset("tiny", num_labels=3), "dense").eval()
    cases = {
        "window": (lambda model, device, precision: Scanner(model, Path("."), ["a", "b", "c"], 400, 200, {}, device,
                                                            precision), (flat, lengths, 200)),
        "dense": (lambda model, device, precision: DenseScanner(model, Path("."), ["a", "b", "c"], 200, 100, device,
                                                                precision, None), (encoded, sequences, 200)),
    }
    for (name, (make, args)), model in zip(cases.items(), (window, dense)):
        on_gpu = make(copy.deepcopy(model).cuda(), torch.device("cuda"), "bf16")
        on_gpu.launch(*args).result()  # Triton compiles and tunes its kernels first, which waits
        torch.cuda.set_sync_debug_mode("error")
        try:
            pending = on_gpu.launch(*args)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        want = make(model, torch.device("cpu"), "fp32").probabilities(*args)
        got = pending.result()
        for g, w in zip(got if name == "dense" else [got], want if name == "dense" else [want]):
            np.testing.assert_allclose(g, w, atol=0.03, err_msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a GPU check (bench/gpu.sh runs it)")
def test_bf16_embeddings_do_not_depend_on_the_batch_they_run_in(tmp_path):
    # Packed batches give each sequence its own attention blocks; only the matrix products see the
    # batch's size, which in bf16 may move a vector by its rounding and no more.
    from dnabert2.embed import Embedder, pooled
    from dnabert2.settings import EmbedSettings

    torch.manual_seed(0)
    folder = save_model(build_model(preset("tiny"), "mlm"), tmp_path / "m", load_tokenizer(RELEASED_TOKENIZER))
    generator = torch.Generator().manual_seed(1)
    sequences = ["".join("ACGT"[i] for i in torch.randint(4, (n,), generator=generator))
                 for n in torch.randint(50, 3000, (24,), generator=generator).tolist()]
    vectors = {}
    for batch in (None, 700, 100_000):  # alone (one per batch: the longest is ~700 tokens), a few, all at once
        embedder = Embedder(folder, EmbedSettings(batch_tokens=batch or 1, device="cuda", dtype="bf16"))
        vectors[batch] = pooled(embedder.states(sequences)[0], "mean")
    scale = np.abs(vectors[None]).max()
    for batch in (700, 100_000):
        assert np.abs(vectors[batch] - vectors[None]).max() <= 0.02 * scale, batch

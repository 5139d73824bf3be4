"""Models by Hugging Face Hub id: fetched by huggingface_hub from a Hub on 127.0.0.1 (HF_ENDPOINT)
into its cache, then used as the local folder is; revisions pinned and recorded; offline mode, private
repositories and every way of not finding a model give one clear line."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from conftest import GENOMES, ROOT, TOKENIZER, assert_user_error, scan_classifier
from dnabert2 import load_model, load_tokenizer
from dnabert2.model import build_model, preset, save_model
from hub_server import HubServer
from test_model import released_folder, released_state, small_config

PRIVATE_TOKEN = "hf_private_test_token"


def checksum(model) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode() + value.float().numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, base):
    """Repositories as users meet them: a fine-tuned classifier with a tagged first commit and a newer
    main, the released layout (with its bert_layers.py, which must never run), a private model, a
    pretrained model to fine-tune from, and a repository without weights."""
    root = tmp_path_factory.mktemp("repos")
    with HubServer() as server:
        first = scan_classifier(root / "classifier", window=300)
        server.commits = {"v1": server.push("lab/splice-tiny", first, tag="v1")}
        second = shutil.copytree(first, root / "classifier-2")
        torch.manual_seed(1)  # other weights: a newer commit on main
        save_model(build_model(preset("tiny", num_labels=3), "classification"), second, load_tokenizer(TOKENIZER))
        server.commits["main"] = server.push("lab/splice-tiny", second)

        released = released_folder(root / "released", small_config(), released_state(small_config()))
        (released / "bert_layers.py").write_text("raise RuntimeError('remote code was executed')\n")
        server.push("zhihan1996/DNABERT-2-117M", released)
        server.push("lab/private-dna", first, token=PRIVATE_TOKEN)
        server.push("lab/tiny-base", base)
        (root / "bare").mkdir()
        (root / "bare" / "config.json").write_text((first / "config.json").read_text())
        server.push("lab/no-weights", root / "bare")
        server.local = {"classifier": first, "released": released}
        yield server


def hub_env(hub, home, **more) -> dict:
    """The environment of a user of this Hub: its own cache, no token, online unless `more` says."""
    env = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "HF_HUB_OFFLINE")}
    return {**env, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home), **more}


def run(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, cwd=ROOT)


def python_checksum(env, name: str) -> subprocess.CompletedProcess:
    """The Python API in a fresh process (huggingface_hub reads HF_ENDPOINT when imported)."""
    script = ("import sys; sys.path.insert(0, 'tests'); from test_hub import checksum; from dnabert2 import load_model; "
              f"print(checksum(load_model({name!r})))")
    return run(env, "-c", script)


def test_a_hub_id_loads_as_its_folder_does_at_the_revision_asked(hub, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    first, latest = hub.commits["v1"], hub.commits["main"]
    expected = checksum(load_model(hub.local["classifier"]))
    for name in ("lab/splice-tiny@v1", f"lab/splice-tiny@{first}"):
        result = python_checksum(env, name)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [expected]
    result = python_checksum(env, "lab/splice-tiny")
    assert result.returncode == 0 and result.stdout.split() != [expected], result.stderr
    tokenizer = run(env, "-c", "from dnabert2 import load_tokenizer; print(load_tokenizer('lab/splice-tiny@v1')"
                               ".get_vocab_size())")
    assert tokenizer.returncode == 0 and tokenizer.stdout.split() == ["4096"], tokenizer.stderr
    snapshots = tmp_path / "hf" / "hub" / "models--lab--splice-tiny" / "snapshots"
    assert sorted(p.name for p in snapshots.iterdir()) == sorted([first, latest])  # the standard cache


def test_the_released_layout_loads_without_its_python_files(hub, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    result = python_checksum(env, "zhihan1996/DNABERT-2-117M")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [checksum(load_model(hub.local["released"]))]
    fetched = {p.name for p in (tmp_path / "hf" / "hub").rglob("*") if "snapshots" in p.parts}
    assert "pytorch_model.bin" in fetched and "bert_layers.py" not in fetched


def test_a_scan_by_hub_id_records_the_revision_and_calls_what_the_folder_calls(hub, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    (tmp_path / "regions.bed").write_text("IV\t0\t20000\n")
    options = ("--fasta", GENOMES / "ce1pct.fa.gz", "--regions", tmp_path / "regions.bed", "--threshold", 0.5,
               "--device", "cpu")
    by_id = run(env, "-m", "dnabert2", "scan", "--model", "lab/splice-tiny@v1", *options, "--out", tmp_path / "id.bed",
                "--summary", tmp_path / "id.json")
    assert by_id.returncode == 0, by_id.stderr
    local = run(env, "-m", "dnabert2", "scan", "--model", hub.local["classifier"], *options,
                "--out", tmp_path / "local.bed")
    assert local.returncode == 0, local.stderr
    assert (tmp_path / "id.bed").read_text() == (tmp_path / "local.bed").read_text()
    assert (tmp_path / "id.bed").read_text().count("\n") > 0
    summary = json.loads((tmp_path / "id.json").read_text())
    assert summary["model"] == f"lab/splice-tiny@{hub.commits['v1']}"


def test_offline_mode_uses_the_cache_and_says_when_a_model_is_not_there(hub, tmp_path):
    home = tmp_path / "hf"
    assert python_checksum(hub_env(hub, home), "lab/splice-tiny@v1").returncode == 0
    before = len(hub.requests)
    offline = python_checksum(hub_env(hub, home, HF_HUB_OFFLINE="1"), "lab/splice-tiny@v1")
    assert offline.returncode == 0, offline.stderr
    assert len(hub.requests) == before  # not one request
    empty = run(hub_env(hub, tmp_path / "empty", HF_HUB_OFFLINE="1"), "-m", "dnabert2", "scan", "--model",
                "lab/splice-tiny@v1", "--fasta", GENOMES / "ce1pct.fa.gz", "--out", tmp_path / "x.bed")
    assert_user_error(empty, "lab/splice-tiny@v1", "HF_HUB_OFFLINE")
    assert not list(tmp_path.glob("x.*"))


@pytest.mark.parametrize("name, words", [
    ("nobody/no-such-model", ["nobody/no-such-model", "no such file or folder here", "on the Hugging Face Hub"]),
    ("lab/splice-tiny@v9", ["no revision 'v9'"]),
    ("lab/private-dna", ["lab/private-dna", "HF_TOKEN"]),
    ("lab/no-weights", ["lab/no-weights@", "no model weights"]),
    ("runs/model--old", ["runs/model--old", "nor a valid Hugging Face Hub id"]),
])
def test_models_that_cannot_be_had_get_one_line(hub, tmp_path, name, words):
    result = run(hub_env(hub, tmp_path / "hf"), "-m", "dnabert2", "scan", "--model", name,
                 "--fasta", GENOMES / "ce1pct.fa.gz", "--out", tmp_path / "x.bed")
    assert_user_error(result, *words)
    assert not list(tmp_path.glob("x.*"))


def test_a_private_model_loads_with_its_token(hub, tmp_path):
    result = python_checksum(hub_env(hub, tmp_path / "hf", HF_TOKEN=PRIVATE_TOKEN), "lab/private-dna")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [checksum(load_model(hub.local["classifier"]))]


def test_an_adapter_fine_tuned_from_a_hub_model_names_its_pinned_base_and_reloads_offline(hub, tmp_path):
    task = tmp_path / "task"
    task.mkdir()
    rows = "sequence,label\n" + "".join(f"{'ACGT' * 10}{'TATAAA' * (i % 2)},{i % 2}\n" for i in range(24))
    for split in ("train", "dev", "test"):
        (task / f"{split}.csv").write_text(rows)
    home, out = tmp_path / "hf", tmp_path / "lora"
    result = run(hub_env(hub, home), "-m", "dnabert2", "finetune", "--model", "lab/tiny-base", "--data", task,
                 "--out", out, "--lora", "--epochs", 1, "--device", "cpu", "-q")
    assert result.returncode == 0, result.stderr
    assert "Fetching" not in result.stderr  # -q: no progress bars, huggingface_hub's neither
    commit = hub.repos["lab/tiny-base"]["refs"]["main"]
    assert json.loads((out / "finetune.json").read_text())["base_model"] == f"lab/tiny-base@{commit}"
    script = f"from dnabert2 import load_model; print(type(load_model({str(out)!r})).__name__)"
    reloaded = run(hub_env(hub, home, HF_HUB_OFFLINE="1"), "-c", script)
    assert reloaded.returncode == 0, reloaded.stderr
    assert reloaded.stdout.split() == ["DNABertForSequenceClassification"]


def test_an_hf_endpoint_that_is_no_url_gets_one_line(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    result = run(env | {"HF_ENDPOINT": "hub.example.org", "HF_HOME": str(tmp_path / "hf")}, "-m", "dnabert2", "scan",
                 "--model", "lab/splice-tiny", "--fasta", GENOMES / "ce1pct.fa.gz", "--out", tmp_path / "x.bed")
    assert_user_error(result, "HF_ENDPOINT 'hub.example.org' is not an http(s) URL")


def test_no_network_and_nothing_cached_gets_one_line(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "HF_HUB_OFFLINE")}
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env |= {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf")}
    result = run(env, "-m", "dnabert2", "scan", "--model", "lab/splice-tiny", "--fasta", GENOMES / "ce1pct.fa.gz",
                 "--out", tmp_path / "x.bed")
    assert_user_error(result, "lab/splice-tiny", "Hugging Face cache", "cannot be reached")

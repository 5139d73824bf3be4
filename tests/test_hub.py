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
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import torch
import yaml

from conftest import GENOMES, ROOT, TOKENIZER, assert_user_error, scan_classifier
from dnabert2 import load_model, load_tokenizer
from dnabert2.hub import hub_id
from dnabert2.model import build_model, preset, save_model
from http_server import LocalServer
from hub_server import HubServer
from test_model import released_folder, released_state, small_config
from test_workflow import WORKFLOW_FILES

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
    pretrained model to fine-tune from, and repositories without weights or without a tokenizer."""
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
        server.push("lab/gated-dna", first, gated=PRIVATE_TOKEN)
        server.push("lab/tiny-base", base)
        (root / "bare").mkdir()
        (root / "bare" / "config.json").write_text((first / "config.json").read_text())
        server.push("lab/no-weights", root / "bare")
        untokenized = shutil.copytree(first, root / "untokenized")
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            (untokenized / name).unlink()
        server.push("lab/no-tokenizer", untokenized)
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
    assert "did not answer" not in result.stderr  # the Hub answered which commit main is
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


def test_a_folder_here_named_as_an_id_is_recorded_as_a_path(hub, tmp_path):
    """Recorded as `lab/splice-tiny`, it read as the Hub's model, another model in any other folder."""
    shutil.copytree(hub.local["classifier"], tmp_path / "lab" / "splice-tiny")
    (tmp_path / "regions.bed").write_text("IV\t0\t2000\n")
    result = subprocess.run([sys.executable, "-m", "dnabert2", "scan", "--model", "lab/splice-tiny", "--fasta",
                             GENOMES / "ce1pct.fa.gz", "--regions", "regions.bed", "--out", "c.bed", "--summary",
                             "c.json", "--device", "cpu", "-q"], capture_output=True, text=True,
                            env=hub_env(hub, tmp_path / "hf"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "c.json").read_text())["model"] == "./lab/splice-tiny"
    assert not (tmp_path / "hf").exists()  # the folder was read, nothing fetched


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
    ("lab/splice-tiny@917dde8", ["no revision '917dde8'", "full 40-character hash"]),
    ("lab/private-dna", ["lab/private-dna", "a private or gated one needs HF_TOKEN"]),
    ("lab/no-weights", ["lab/no-weights@", "no model weights"]),
    ("runs/model--old", ["runs/model--old", "nor a valid Hugging Face Hub id"]),
    # Paths as written, never the repository they would name once normalised.
    ("./lab/splice-tiny", ["lab/splice-tiny: no such folder"]),
    ("lab/splice-tiny/", ["lab/splice-tiny: no such folder"]),
    ("lab//splice-tiny", ["lab/splice-tiny: no such folder"]),
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
    wrong = run(hub_env(hub, tmp_path / "hf2", HF_TOKEN="hf_wrong"), "-m", "dnabert2", "scan", "--model",
                "lab/private-dna", "--fasta", GENOMES / "ce1pct.fa.gz", "--out", tmp_path / "x.bed")
    assert_user_error(wrong, "lab/private-dna", "the token given (HF_TOKEN, or a login) has no access to it")


@pytest.fixture(scope="module")
def hub_lora(hub, tmp_path_factory):
    """A LoRA adapter fine-tuned from lab/tiny-base by Hub id (-q), and the cache it was fetched into."""
    root = tmp_path_factory.mktemp("lora")
    task = root / "task"
    task.mkdir()
    rows = "sequence,label\n" + "".join(f"{'ACGT' * 10}{'TATAAA' * (i % 2)},{i % 2}\n" for i in range(24))
    for split in ("train", "dev", "test"):
        (task / f"{split}.csv").write_text(rows)
    home, out = root / "hf", root / "lora"
    result = run(hub_env(hub, home), "-m", "dnabert2", "finetune", "--model", "lab/tiny-base", "--data", task,
                 "--out", out, "--lora", "--epochs", 1, "--device", "cpu", "-q")
    assert result.returncode == 0, result.stderr
    return out, home, result.stderr


def test_an_adapter_fine_tuned_from_a_hub_model_names_its_pinned_base_and_reloads_offline(hub, hub_lora):
    out, home, stderr = hub_lora
    assert "Fetching" not in stderr  # -q: no progress bars, huggingface_hub's neither
    commit = hub.repos["lab/tiny-base"]["refs"]["main"]
    assert json.loads((out / "finetune.json").read_text())["base_model"] == f"lab/tiny-base@{commit}"
    adapter = json.loads((out / "adapter_config.json").read_text())  # as peft records a Hub base
    assert (adapter["base_model_name_or_path"], adapter["revision"]) == ("lab/tiny-base", commit)
    script = f"from dnabert2 import load_model; print(type(load_model({str(out)!r})).__name__)"
    reloaded = run(hub_env(hub, home, HF_HUB_OFFLINE="1"), "-c", script)
    assert reloaded.returncode == 0, reloaded.stderr
    assert reloaded.stdout.split() == ["DNABertForSequenceClassification"]
    # The table names a Hub model by its id, not by the cache folder of its commit.
    task = out.parent / "task"
    scored = run(hub_env(hub, home, HF_HUB_OFFLINE="1"), "-m", "dnabert2", "evaluate", "--model", "lab/tiny-base",
                 "--data", task, "--out", out.parent / "e.tsv", "--baseline", "none", "--epochs", 1, "--device", "cpu",
                 "-q")
    assert scored.returncode == 0, scored.stderr
    assert "| lab/tiny-base (" in (out.parent / "e.md").read_text()


def test_an_hf_endpoint_that_is_no_url_gets_one_line(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    result = run(env | {"HF_ENDPOINT": "hub.example.org", "HF_HOME": str(tmp_path / "hf")}, "-m", "dnabert2", "scan",
                 "--model", "lab/splice-tiny", "--fasta", GENOMES / "ce1pct.fa.gz", "--out", tmp_path / "x.bed")
    assert_user_error(result, "HF_ENDPOINT 'hub.example.org' is not an http(s) URL")


def test_an_hf_endpoint_that_answers_a_web_page_gets_one_line(tmp_path):
    """A proxy's login page, or a web server at a mistyped HF_ENDPOINT, answers 200 with HTML where
    huggingface_hub expects JSON: its decoding error was a traceback."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>Please log in</body></html>")

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    env = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "HF_HUB_OFFLINE")}
    with LocalServer(Page) as page:
        env |= {"HF_ENDPOINT": f"http://127.0.0.1:{page.port}", "HF_HOME": str(tmp_path / "hf")}
        for command in (["fetch", "lab/splice-tiny", "--out", tmp_path / "x.tsv"],
                        ["scan", "--model", "lab/splice-tiny", "--fasta", GENOMES / "ce1pct.fa.gz",
                         "--out", tmp_path / "x.bed"]):
            result = run(env, "-m", "dnabert2", *command)
            assert_user_error(result, "lab/splice-tiny: http://127.0.0.1:", "does not answer as the Hugging Face Hub "
                              "does (not JSON); is HF_ENDPOINT right?")
    assert not list(tmp_path.glob("x.*"))


def test_a_gated_model_says_where_to_ask_for_access_and_loads_with_a_token_let_in(hub, tmp_path):
    for token in (None, "hf_not_let_in"):
        env = hub_env(hub, tmp_path / "hf", **({"HF_TOKEN": token} if token else {}))
        result = run(env, "-m", "dnabert2", "fetch", "lab/gated-dna", "--out", tmp_path / "x.tsv")
        assert_user_error(result, "lab/gated-dna: a gated model on the Hugging Face Hub: ask for access on its page "
                          f"({hub.endpoint}/lab/gated-dna), then give a token")
        assert not list(tmp_path.glob("x.*"))
    result = python_checksum(hub_env(hub, tmp_path / "hf", HF_TOKEN=PRIVATE_TOKEN), "lab/gated-dna")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [checksum(load_model(hub.local["classifier"]))]


def test_a_model_the_cache_holds_in_part_says_so_offline(hub, tmp_path):
    """main moved on and its new weights never arrived (the storage host unreachable): offline, the
    cache's main is a commit without weights, which was told as no model at all."""
    home = tmp_path / "hf"
    repo = "lab/moving"
    hub.push(repo, hub.local["classifier"])
    assert run(hub_env(hub, home), "-m", "dnabert2", "fetch", repo, "--out", tmp_path / "first.tsv").returncode == 0
    newer = shutil.copytree(hub.local["classifier"], tmp_path / "newer")
    (newer / "model.safetensors").write_bytes((newer / "model.safetensors").read_bytes() + b" ")
    hub.push(repo, newer)
    hub.storage = closed_url()
    try:
        failed = run(hub_env(hub, home), "-m", "dnabert2", "fetch", repo, "--out", tmp_path / "second.tsv")
    finally:
        hub.storage = None
    assert_user_error(failed, f"{repo}: cannot fetch it from the Hugging Face Hub")
    offline = run(hub_env(hub, home, HF_HUB_OFFLINE="1"), "-m", "dnabert2", "scan", "--model", repo, "--fasta",
                  GENOMES / "ce1pct.fa.gz", "--out", tmp_path / "x.bed")
    assert_user_error(offline, f"{repo}: the Hugging Face cache holds only part of it (HF_HUB_OFFLINE is set)",
                      f"dnabert2 fetch {repo}")
    assert not list(tmp_path.glob("x.*"))


def closed_url() -> str:
    """The URL of a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{closed.getsockname()[1]}"


@pytest.mark.parametrize("command", ["scan", "fetch"])
def test_weights_the_hub_storage_does_not_send_get_one_line(hub, tmp_path, command):
    """The Hub answers, its file storage does not (a firewall that lets the Hub through, not the host
    its weights are redirected to): huggingface_hub lets its HTTP client's own error through, which
    was a traceback."""
    out = tmp_path / ("x.bed" if command == "scan" else "x.tsv")
    words = ["--fasta", GENOMES / "ce1pct.fa.gz", "--out", out] if command == "scan" else ["--out", out]
    hub.storage = closed_url()
    try:
        result = run(hub_env(hub, tmp_path / "hf"), "-m", "dnabert2", command,
                     *(["--model"] if command == "scan" else []), "lab/splice-tiny", *words)
    finally:
        hub.storage = None
    assert_user_error(result, "lab/splice-tiny: cannot fetch it from the Hugging Face Hub")
    assert result.stderr.count("Max retries exceeded") == 1  # huggingface_hub's warning, said once
    assert not list(tmp_path.glob("x.*"))


def test_no_network_and_nothing_cached_gets_one_line(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "HF_HUB_OFFLINE")}
    env |= {"HF_ENDPOINT": closed_url(), "HF_HOME": str(tmp_path / "hf")}
    result = run(env, "-m", "dnabert2", "scan", "--model", "lab/splice-tiny", "--fasta", GENOMES / "ce1pct.fa.gz",
                 "--out", tmp_path / "x.bed")
    assert_user_error(result, "lab/splice-tiny", "Hugging Face cache", "cannot be reached")


def test_fetch_caches_models_for_offline_use_and_names_the_commits(hub, tmp_path):
    home, out = tmp_path / "hf", tmp_path / "fetched.tsv"
    result = run(hub_env(hub, home), "-m", "dnabert2", "fetch", "lab/splice-tiny@v1", "zhihan1996/DNABERT-2-117M",
                 "--out", out, "-q")
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    released = hub.repos["zhihan1996/DNABERT-2-117M"]["refs"]["main"]
    assert [row[:2] for row in rows] == [["model", "revision"], ["lab/splice-tiny@v1", f"lab/splice-tiny@{hub.commits['v1']}"],
                                         ["zhihan1996/DNABERT-2-117M", f"zhihan1996/DNABERT-2-117M@{released}"]]
    assert (Path(rows[1][2]) / "model.safetensors").is_file() and not (Path(rows[2][2]) / "bert_layers.py").exists()
    offline = python_checksum(hub_env(hub, home, HF_HUB_OFFLINE="1"), "lab/splice-tiny@v1")
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.split() == [checksum(load_model(hub.local["classifier"]))]
    # Where the Hub does not answer, fetch fails: huggingface_hub would give the cached commit, however old.
    for endpoint, words in ((closed_url(), ["cannot be reached", "cached copy may be out of date"]),
                            (hub.endpoint + "/gone", ["cannot fetch it from the Hugging Face Hub", "404"])):
        again = run(hub_env(hub, home) | {"HF_ENDPOINT": endpoint}, "-m", "dnabert2", "fetch", "lab/splice-tiny@v1",
                    "--out", tmp_path / "again.tsv")
        assert_user_error(again, "lab/splice-tiny@v1", *words)
        # Loading it takes the cached copy (huggingface_hub's way), which it now says it does.
        cached = python_checksum(hub_env(hub, home) | {"HF_ENDPOINT": endpoint}, "lab/splice-tiny@v1")
        assert cached.returncode == 0, cached.stderr
        assert "lab/splice-tiny@v1: the Hugging Face Hub did not answer" in cached.stderr
        assert f"using the cached lab/splice-tiny@{hub.commits['v1']}, which may not be its newest" in cached.stderr
    assert not (tmp_path / "again.tsv").exists()


def test_fetch_brings_a_lora_adapter_with_its_base_model(hub, hub_lora, tmp_path):
    hub.push("lab/tiny-lora", hub_lora[0])
    fresh = hub_env(hub, tmp_path / "fresh")  # a cache that holds neither
    result = run(fresh, "-m", "dnabert2", "fetch", "lab/tiny-lora", "-q")
    assert result.returncode == 0, result.stderr
    base = hub.repos["lab/tiny-base"]["refs"]["main"]
    assert [row.split("\t")[:2] for row in result.stdout.splitlines()][1:] == [
        ["lab/tiny-lora", f"lab/tiny-lora@{hub.repos['lab/tiny-lora']['refs']['main']}"],
        [f"lab/tiny-base@{base}", f"lab/tiny-base@{base}"]]
    script = "from dnabert2 import load_model; print(type(load_model('lab/tiny-lora')).__name__)"
    offline = run(fresh | {"HF_HUB_OFFLINE": "1"}, "-c", script)
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.split() == ["DNABertForSequenceClassification"]


def test_fetch_refuses_an_adapter_whose_base_model_on_disk_is_gone(hub, hub_lora, tmp_path):
    """Every job would fail on it; fetch, which checks what jobs would refuse, said nothing."""
    adapter = shutil.copytree(hub_lora[0], tmp_path / "adapter")
    info = json.loads((adapter / "finetune.json").read_text())
    (adapter / "finetune.json").write_text(json.dumps({**info, "base_model": str(tmp_path / "gone")}))
    hub.push("lab/lora-on-disk", adapter)
    result = run(hub_env(hub, tmp_path / "hf"), "-m", "dnabert2", "fetch", "lab/lora-on-disk", "--out",
                 tmp_path / "f.tsv")
    assert_user_error(result, "its base model", "gone is not there any more")
    assert not (tmp_path / "f.tsv").exists()


def test_fetch_refuses_an_adapter_whose_base_on_the_hub_has_moved_on(hub, hub_lora, tmp_path):
    """A base named without its commit, whose main now holds other weights: every job would refuse the
    adapter; fetch said nothing."""
    adapter = shutil.copytree(hub_lora[0], tmp_path / "adapter")
    info = json.loads((adapter / "finetune.json").read_text())
    (adapter / "finetune.json").write_text(json.dumps({**info, "base_model": "lab/moved-base"}))
    torch.manual_seed(5)
    other = save_model(build_model(preset("tiny"), "mlm"), tmp_path / "other", load_tokenizer(TOKENIZER))
    hub.push("lab/moved-base", other)
    hub.push("lab/lora-moved", adapter)
    result = run(hub_env(hub, tmp_path / "hf"), "-m", "dnabert2", "fetch", "lab/lora-moved", "--out",
                 tmp_path / "f.tsv")
    assert_user_error(result, "has other weights than the adapter was trained on")
    assert not (tmp_path / "f.tsv").exists()


@pytest.mark.parametrize("name, words", [
    ("tests", ["tests: a file or folder here, not a Hugging Face Hub id"]),
    ("lab/no-weights", ["lab/no-weights@"]),
    ("lab/no-tokenizer", ["lab/no-tokenizer@", "no tokenizer.json"]),
    ("tests/nothing-here", ["a path here, as ./tests is a folder", "tests/nothing-here@main"]),
    ("nobody/no-such-model", ["nobody/no-such-model", "on the Hugging Face Hub"]),
])
def test_fetch_refuses_what_is_no_model_on_the_hub_and_writes_nothing(hub, tmp_path, name, words):
    result = run(hub_env(hub, tmp_path / "hf"), "-m", "dnabert2", "fetch", "lab/splice-tiny", name,
                 "--out", tmp_path / "fetched.tsv")
    assert_user_error(result, *words)
    assert not list(tmp_path.glob("fetched*"))
    if hub_id(name) is None:  # refused before anything was fetched
        assert not (tmp_path / "hf").exists()


def test_the_workflow_fetches_a_hub_model_once_and_its_jobs_use_that_commit_offline(hub, tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in WORKFLOW_FILES:
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, checkout / name)
    (tmp_path / "v2").mkdir()
    for file in hub.local["classifier"].iterdir():
        shutil.copy(file, tmp_path / "v2")
    first = hub.push("lab/workflow-tiny", hub.local["classifier"])
    (checkout / "config" / "config.yaml").write_text(yaml.safe_dump({
        "genomes": {"ce1pct": {"source": "example/ce1pct.fa.gz", "annotation": "example/ce1pct.gff3.gz"}},
        "scan": {"s": {"model": "lab/workflow-tiny", "genome": "ce1pct", "contigs": ["III"], "stride": 150}}}))
    env = hub_env(hub, tmp_path / "hf")

    def snakemake(*args):
        result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "results/scan/s.bed", *args],
                                cwd=checkout, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        fetched = (checkout / "resources/hub/lab/workflow-tiny.tsv").read_text().splitlines()[1].split("\t")[1]
        return fetched, json.loads((checkout / "results/scan/s.json").read_text())["model"]

    assert snakemake() == (f"lab/workflow-tiny@{first}",) * 2
    # A newer commit on main, which another user's fetch brings into the shared cache: the jobs keep
    # reading the commit the workflow fetched, and ask the Hub nothing.
    (tmp_path / "v2" / "README.md").write_text("a newer commit\n")
    second = hub.push("lab/workflow-tiny", tmp_path / "v2")
    assert run(env, "-m", "dnabert2", "fetch", "lab/workflow-tiny", "-q").returncode == 0
    before = len(hub.requests)
    assert snakemake("--forcerun", "scan_chunk") == (f"lab/workflow-tiny@{first}",) * 2
    assert len(hub.requests) == before
    # Fetching again takes the newer commit, and the scan follows.
    assert snakemake("--forcerun", "fetch_model") == (f"lab/workflow-tiny@{second}",) * 2

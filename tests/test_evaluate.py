"""The GUE-format harness: task discovery, the k-mer baseline on real labelled data, the tables."""

import csv
import gzip
import json
import shutil

import numpy as np
import pytest
import torch

from conftest import DATA, assert_user_error, run_cli
from dnabert2 import load_tokenizer
from dnabert2.baselines import cnn_baseline, kmer_baseline
from dnabert2.model import build_model, preset, save_model
from dnabert2.evaluate import write_tables
from dnabert2.tasks.gue import SPLITS, find_tasks, random_split, read_task

SAMPLE = DATA / "classification" / "gue_format_sample"
UCI = DATA / "classification" / "uci" / "uci_splice_statlog.csv"


@pytest.fixture(scope="module")
def uci_task(tmp_path_factory):
    """The UCI primate splice-junction set (3,186 × 60 nt; 0 neither, 1 donor, 2 acceptor) as a GUE
    task, split 80/10/10 at random with a fixed seed."""
    with open(UCI, newline="") as handle:
        pairs = [(r["sequence"].upper(), int(r["label"])) for r in csv.DictReader(handle)]
    pairs = [(s, label) for s, label in pairs if set(s) <= set("ACGTN")]
    return random_split(pairs, tmp_path_factory.mktemp("gue") / "splice" / "uci")


def test_a_random_split_holds_each_sequence_once(uci_task):
    """The UCI set repeats 185 sequences, one of them under two labels: split as they came, 25 test and
    35 dev sequences were also in train, and the benchmark scored models on examples they had seen."""
    with open(UCI, newline="") as handle:
        rows = [(r["sequence"].upper(), int(r["label"])) for r in csv.DictReader(handle)]
    labels = {}
    for sequence, label in rows:
        labels.setdefault(sequence, set()).add(label)
    task = read_task(uci_task)
    held = {split: list(task[split][0]) for split in SPLITS}
    everything = [q for split in SPLITS for q in held[split]]
    assert len(everything) == len(set(everything))  # none twice, within or across splits
    assert set(everything) == {q for q, found in labels.items() if len(found) == 1 and set(q) <= set("ACGTN")}


def test_kmer_baseline_on_uci_splice_junctions(uci_task):
    result = kmer_baseline(read_task(uci_task), k=6)
    assert set(result) == {"mcc", "f1", "accuracy", "auroc", "auprc", "collapsed"} and result["collapsed"] is False
    # A bag of 6-mers loses where the junction is, yet finds real signal (chance: MCC 0, AUROC 0.5).
    assert result["mcc"] > 0.4 and result["auroc"] > 0.8


def test_cnn_baseline_on_uci_splice_junctions(uci_task):
    result = cnn_baseline(read_task(uci_task), seed=0, device="cpu")
    assert set(result) == {"mcc", "f1", "accuracy", "auroc", "auprc", "collapsed"} and result["collapsed"] is False
    # Convolutions see where the GT/AG and its neighbours sit, which a bag of k-mers cannot.
    assert result["mcc"] > 0.7 and result["auroc"] > 0.9
    assert cnn_baseline(read_task(uci_task), seed=0, device="cpu") == result  # seeded: the same figures again


def test_the_cnn_baseline_scores_a_sequence_as_it_does_alone():
    """Padded to its split's longest, a sequence's zeros fed the pool: one 400 bp test row moved the
    scores of 200 others by up to 0.3 and changed 6 of their classes."""
    from dnabert2.baselines import CNN, _probabilities, one_hot

    torch.manual_seed(0)
    model = CNN(3)
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list("ACGT"), n)) for n in (60, 61, 400, 7)]
    alone = [_probabilities(model, one_hot([q]), torch.tensor([len(q)])) for q in sequences]
    together = _probabilities(model, one_hot(sequences), torch.tensor([len(q) for q in sequences]))
    assert np.allclose(np.concatenate(alone), together, atol=1e-6)


def test_test_and_dev_sequences_change_nothing_that_is_trained(tmp_path):
    """The default --max-tokens, a quarter of the longest sequence, was taken over every split: one
    400 bp test row raised it from 15 to 100 tokens, and the epoch chosen and the test scores moved."""
    model = save_model(build_model(preset("tiny"), "mlm"), tmp_path / "tiny",
                       load_tokenizer(DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"))
    kept = {}
    for name, row in (("plain", ""), ("long", "ACGT" * 100 + ",0\n")):
        task = shutil.copytree(SAMPLE, tmp_path / name)
        with open(task / "test.csv", "a") as handle:
            handle.write(row)
        out = tmp_path / f"{name}-model"
        result = run_cli("finetune", "--model", model, "--data", task, "--out", out, "--epochs", 2, "--device", "cpu",
                         "-q")
        assert result.returncode == 0, result.stderr
        run = json.loads((out / "metrics.json").read_text())["runs"][0]
        kept[name] = json.loads((out / "finetune.json").read_text())["max_tokens"], run["history"]
    assert kept["plain"] == kept["long"]


def test_macro_f1_averages_the_classes_test_holds_for_every_model():
    """Test lacks class 2: a model that predicts it sometimes was averaged over three classes, one that
    never does over two, so seeds' F1 were figures of different things."""
    from dnabert2.tasks.gue import scores

    labels = np.array([0, 0, 1, 1])
    never, sometimes = np.eye(3)[[0, 1, 1, 1]], np.eye(3)[[0, 2, 1, 1]]  # one error each
    assert scores(labels, never)["f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert scores(labels, sometimes)["f1"] == pytest.approx((2 / 3 + 1) / 2)


def test_a_baseline_that_predicts_one_class_is_marked_so(tmp_path):
    task = {split: (["ACGT"] * 4, np.array([0, 1, 0, 1])) for split in SPLITS}
    result = kmer_baseline(task, k=2)  # the same sequence four times: one prediction for all
    assert result["collapsed"] is True
    write_tables([{"task": "t", "method": "2-mer", "n_test": 4, **result}], tmp_path / "table.tsv")
    assert "(one class)" in (tmp_path / "table.md").read_text()
    # A fine-tuned cell is a mean over seeds: it says how many of them predict one class.
    seeds = {"task": "t", "method": "tiny (full)", "n_test": 4, "mcc": 0.1, "mcc_sd": 0.1, "collapsed": True,
             "one_class_seeds": 1, "seeds": 2}
    write_tables([seeds, {"task": "t", "method": "2-mer", "n_test": 4, **result}], tmp_path / "seeds.tsv")
    assert "| 0.100 ± 0.100 (one class in 1 of 2 seeds) |" in (tmp_path / "seeds.md").read_text()
    with open(tmp_path / "seeds.tsv", newline="") as handle:
        counts = [(r["one_class_seeds"], r["seeds"]) for r in csv.DictReader(handle, delimiter="\t")]
    assert counts == [("1", "2"), ("", "")]  # counts, not 1.0000 and 2.0000 beside a baseline's blanks
    # A test split of one class shows "undefined", and no note explains a mark no cell has.
    write_tables([{**seeds, "mcc": float("nan")}], tmp_path / "undefined.tsv")
    assert "undefined" in (tmp_path / "undefined.md").read_text()
    assert "one class" not in (tmp_path / "undefined.md").read_text().replace("holds one class", "")


def test_no_baseline_and_a_baseline_at_once_is_refused(uci_task, tmp_path):
    result = run_cli("evaluate", "--model", tmp_path, "--data", uci_task, "--out", tmp_path / "t.tsv",
                     "--baseline", "none", "kmer")
    assert_user_error(result, "--baseline none kmer", "stands alone")


def test_tasks_are_found_in_the_gue_layout(uci_task, tmp_path, caplog):
    root = uci_task.parent.parent
    shutil.copytree(SAMPLE, root / "EMP" / "sample")
    (root / "notes").mkdir(exist_ok=True)
    (root / "notes" / "train.csv").write_text("sequence,label\n")  # no dev/test: not a task, and said
    (root / "linked").mkdir(exist_ok=True)
    (root / "linked" / "tf").symlink_to(SAMPLE, target_is_directory=True)  # rglob passed linked folders over
    (root / "linked" / "loop").symlink_to(root, target_is_directory=True)
    assert list(find_tasks(root)) == ["EMP/sample", "linked/tf", "splice/uci"]
    assert "notes: no dev.csv and no test.csv, so no task: left out" in caplog.text


def test_evaluate_writes_both_tables(uci_task, tmp_path):
    torch.manual_seed(0)
    save_model(build_model(preset("tiny"), "mlm"), tmp_path / "m" / "tiny",
               load_tokenizer(DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"))
    out = tmp_path / "results.tsv"
    # A folder given as m/tiny (shaped as a Hub id) is named tiny, as any folder is: it was ./m/tiny.
    result = run_cli("evaluate", "--model", "m/tiny", "--data", SAMPLE, "--out", out, "--lora", "--epochs", 1,
                     "--device", "cpu", "--kmer", 3, "--baseline", "kmer", "cnn", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # The sample's dev and test sequences were scored although train holds them, without a word.
    assert "dev.csv: 15 of its 15 sequences are also in train.csv" in result.stderr
    assert "test.csv: 10 of its 15 sequences are also in train.csv" in result.stderr
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["method"] for r in rows] == ["tiny (LoRA)", "3-mer logistic regression", "CNN (one-hot, 2 conv layers)"]
    assert not [c for c in rows[0] if c.endswith("_sd")]  # the spread of several seeds, and this is one
    assert all(r["task"] == "gue_format_sample" and r["n_test"] == "15" for r in rows)
    assert all(-1 <= float(r["mcc"]) <= 1 and 0 <= float(r["auroc"]) <= 1 for r in rows)
    markdown = out.with_suffix(".md").read_text().splitlines()
    assert markdown[0] == ("| task | test examples | tiny (LoRA) MCC | 3-mer logistic regression MCC | "
                           "CNN (one-hot, 2 conv layers) MCC |")
    assert markdown[2].startswith("| gue_format_sample | 15 |")


def test_bad_gue_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_user_error(run_cli("evaluate", "--model", tmp_path, "--gue", tmp_path / "empty", "--out",
                              tmp_path / "r.tsv"), "no task folders")
    assert not (tmp_path / "r.tsv").exists()


def test_a_per_base_model_is_refused_by_evaluate(tmp_path):
    """A per-base model (fine-tuned on a dense task) has no window classifier to score a window task with."""
    folder = save_model(build_model(preset("tiny", num_labels=3), "dense"), tmp_path / "dense",
                        load_tokenizer(DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"))
    (folder / "finetune.json").write_text(json.dumps({"head": "dense", "num_labels": 3}))
    result = run_cli("evaluate", "--model", folder, "--data", SAMPLE, "--out", tmp_path / "r.tsv", "--device", "cpu")
    assert_user_error(result, "a per-base model", "scan-eval")
    assert not (tmp_path / "r.tsv").exists()


@pytest.mark.parametrize("split, words", [
    ("train", ["z/bad/train.csv", "a single class"]),
    ("dev", ["z/bad/dev.csv", "a single class", "picks the epoch"]),  # it cannot rank epochs
])
def test_a_bad_task_folder_is_refused_before_any_task_is_trained(tmp_path, split, words):
    """A GUE tree whose last folder is no window task fails at once, not after hours spent on the
    folders before it."""
    root = tmp_path / "gue"
    shutil.copytree(SAMPLE, root / "a" / "good")
    shutil.copytree(SAMPLE, root / "z" / "bad")
    (root / "z" / "bad" / f"{split}.csv").write_text("sequence,label\nACGTACGT,1\nACGTACGA,1\n")
    model = save_model(build_model(preset("tiny"), "mlm"), tmp_path / "tiny",
                       load_tokenizer(DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"))
    result = run_cli("evaluate", "--model", model, "--gue", root, "--out", tmp_path / "r.tsv", "--epochs", 1,
                     "--device", "cpu")
    assert_user_error(result, *words)
    assert "task a/good" not in result.stderr  # refused before the first task was read for training
    assert not (tmp_path / "r.tsv").exists()


def test_k_mers_longer_than_every_training_sequence_are_refused_before_any_training(tmp_path):
    """sklearn finds no k-mer at all then ("empty vocabulary"): that came after fine-tuning, as a traceback."""
    model = save_model(build_model(preset("tiny"), "mlm"), tmp_path / "tiny",
                       load_tokenizer(DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"))
    longest = max(len(s) for s in read_task(SAMPLE)["train"][0])
    result = run_cli("evaluate", "--model", model, "--data", SAMPLE, "--out", tmp_path / "r.tsv", "--kmer",
                     longest + 1, "--epochs", 1, "--device", "cpu")
    assert_user_error(result, f"training sequences are at most {longest} bp", f"--kmer {longest + 1}")
    assert "fine-tun" not in result.stderr.lower() and not (tmp_path / "r.tsv").exists()


def test_a_task_description_of_another_kind_is_refused_before_any_task_is_trained(tmp_path):
    root = tmp_path / "gue"
    shutil.copytree(SAMPLE, root / "a" / "good")
    shutil.copytree(SAMPLE, root / "z" / "kind")
    (root / "z" / "kind" / "task.json").write_text('{"task": "splice"}')  # three labels, two classes here
    model = save_model(build_model(preset("tiny"), "mlm"), tmp_path / "tiny",
                       load_tokenizer(DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"))
    result = run_cli("evaluate", "--model", model, "--gue", root, "--out", tmp_path / "r.tsv", "--epochs", 1,
                     "--device", "cpu")
    assert_user_error(result, "z/kind/task.json", "a splice task has 3 labels")
    assert "task a/good" not in result.stderr
    assert not (tmp_path / "r.tsv").exists()


def test_an_output_over_a_task_file_or_the_model_is_refused(tmp_path):
    task = shutil.copytree(SAMPLE, tmp_path / "task")
    model = save_model(build_model(preset("tiny"), "mlm"), tmp_path / "tiny",
                       load_tokenizer(DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"))
    before = {f: f.read_bytes() for f in [*task.iterdir(), *model.iterdir()]}
    for out in (task / "train.csv", model / "config.json"):
        result = run_cli("evaluate", "--model", model, "--data", task, "--out", out, "--epochs", 1, "--device", "cpu")
        assert_user_error(result, "the output would overwrite the input")
    assert {f: f.read_bytes() for f in [*task.iterdir(), *model.iterdir()]} == before


def test_a_fine_tuned_classifier_is_scored_on_whole_sequences_whatever_training_options_say(tmp_path):
    """As finetune reports it and predict runs it: --max-tokens cuts what is trained, and nothing is;
    nor do --lora, --epochs or --lr train anything."""
    model = save_model(build_model(preset("tiny", num_labels=2), "classification"), tmp_path / "classifier",
                       load_tokenizer(DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"))
    rows = {}
    for cut in ([], ["--max-tokens", 8, "--lora", "--epochs", 7, "--lr", "0.01", "--seeds", 0, 1]):
        result = run_cli("evaluate", "--model", model, "--data", SAMPLE, "--out", tmp_path / "r.tsv", "--device",
                         "cpu", "--baseline", "none", *cut)
        assert result.returncode == 0, result.stderr
        with open(tmp_path / "r.tsv", newline="") as handle:
            rows[bool(cut)] = list(csv.DictReader(handle, delimiter="\t"))
    # Options that train do nothing here, and say so.
    (warning,) = [line for line in result.stderr.splitlines() if "shape training" in line]
    assert all(flag in warning for flag in ("--max-tokens", "--lora", "--epochs", "--lr", "--seeds")), warning
    assert rows[True] == rows[False]


def test_a_classifier_scored_on_a_task_of_another_kind_is_said_so(tmp_path):
    """Both folders name their task (tasks writes task.json, finetune copies it beside the model): a
    promoter classifier scored on a tts task was figures without a word."""
    model = save_model(build_model(preset("tiny", num_labels=2), "classification"), tmp_path / "classifier",
                       load_tokenizer(DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"))
    (model / "task.json").write_text('{"task": "promoter"}')
    task = shutil.copytree(SAMPLE, tmp_path / "tts")
    (task / "task.json").write_text('{"task": "tts"}')
    result = run_cli("evaluate", "--model", model, "--data", task, "--out", tmp_path / "r.tsv", "--device", "cpu",
                     "--baseline", "none")
    assert result.returncode == 0, result.stderr
    assert "a classifier of promoter, scored on" in result.stderr and "a tts task" in result.stderr


def test_a_compressed_table_and_its_markdown_twin(uci_task, tmp_path):
    """results.tsv.gz is bgzip, as every table output named .gz, and its Markdown is results.md."""
    model = save_model(build_model(preset("tiny"), "mlm"), tmp_path / "tiny",
                       load_tokenizer(DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"))
    out = tmp_path / "results.tsv.gz"
    result = run_cli("evaluate", "--model", model, "--data", SAMPLE, "--out", out, "--epochs", 1, "--device", "cpu",
                     "--baseline", "none", "-q")
    assert result.returncode == 0, result.stderr
    with gzip.open(out, "rt") as handle:
        assert handle.readline().startswith("task\tmethod")
    assert (tmp_path / "results.md").read_text().startswith("| task |")


def test_evaluate_cuts_inputs_at_the_given_max_tokens(tmp_path):
    model = save_model(build_model(preset("tiny"), "mlm"), tmp_path / "tiny",
                       load_tokenizer(DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"))
    task = shutil.copytree(SAMPLE, tmp_path / "sample")
    result = run_cli("evaluate", "--model", model, "--data", ".", "--out", tmp_path / "r.tsv", "--epochs", 1,
                     "--device", "cpu", "--baseline", "none", "--max-tokens", 8, cwd=task)
    assert result.returncode == 0, result.stderr
    assert "longer than 8 tokens" in result.stderr  # finetune's cut, at the limit given to evaluate
    with open(tmp_path / "r.tsv", newline="") as handle:
        assert {row["task"] for row in csv.DictReader(handle, delimiter="\t")} == {"sample"}  # --data . by its name

"""Fine-tuning on GUE-format tasks: metrics, LoRA adapters that reload, full fine-tuning that learns,
the released layout as a starting point, and bad task files."""

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import DATA, assert_user_error, run_cli
from dnabert2 import load_model, load_tokenizer
from dnabert2.finetune import default_lr, predict
from dnabert2.errors import UserError
from dnabert2.model import build_model, preset, save_model
from dnabert2.tasks.gue import read_split, read_task, scores
from dnabert2.tokenizer import encode

TOKENIZER = DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"


def write_task(folder, rows_by_split):
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in rows_by_split.items():
        with open(folder / f"{split}.csv", "w", newline="") as handle:
            table = csv.writer(handle)
            table.writerow(["sequence", "label"])
            table.writerows(rows)
    return folder


@pytest.fixture(scope="module")
def motif_task(tmp_path_factory):
    """Label 1 when a TATAAA box sits in random sequence: learnable from a random start."""
    rng = np.random.default_rng(0)

    def rows(n):
        out = []
        for i in range(n):
            sequence = list(rng.choice(list("ACGT"), 80))
            if i % 2:
                at = rng.integers(0, 74)
                sequence[at:at + 6] = "TATAAA"
            out.append(("".join(sequence), i % 2))
        return out

    return write_task(tmp_path_factory.mktemp("task") / "tata", {"train": rows(400), "dev": rows(80), "test": rows(80)})


def test_full_fine_tuning_learns_and_reports_every_metric(base, motif_task, tmp_path):
    out = tmp_path / "full"
    result = run_cli("finetune", "--model", base, "--data", motif_task, "--out", out, "--full", "--epochs", 8, "--patience", 8,
                     "--lr", 1e-3, "--seeds", 0, 1, "--device", "cpu", "-q")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"mcc", "f1", "accuracy", "auroc", "auprc"} == set(metrics["test_sd"])
    assert metrics["test"]["auroc"] > 0.7 and metrics["test"]["mcc"] > 0.25  # chance: 0.5 and 0
    assert [run["seed"] for run in metrics["runs"]] == [0, 1] and metrics["test_sd"]["mcc"] > 0
    assert metrics["test"]["mcc"] == pytest.approx(np.mean([r["test"]["mcc"] for r in metrics["runs"]]))
    saved = next(r for r in metrics["runs"] if r["seed"] == metrics["saved_seed"])
    assert saved["dev_mcc"] == max(r["dev_mcc"] for r in metrics["runs"])
    # The saved model is the best dev epoch of the best seed: its test predictions give its test metrics,
    # on whole sequences as predict and scan run it (--max-tokens cuts training's inputs only).
    model = load_model(out)
    task = read_task(motif_task)
    ids = encode(load_tokenizer(out), task["test"][0])
    probabilities = predict(model, ids, task["test"][1], 32, torch.device("cpu"), torch.autocast("cpu", enabled=False))
    assert scores(task["test"][1], probabilities)["mcc"] == pytest.approx(saved["test"]["mcc"])


def test_lora_saves_the_adapter_only_and_reloads_merged(base, motif_task, tmp_path):
    out = tmp_path / "lora"
    result = run_cli("finetune", "--model", base, "--data", motif_task, "--out", out, "--lora", "--epochs", 2,
                     "--lr", 1e-3, "--device", "cpu", "-q")
    assert result.returncode == 0, result.stderr
    # One seed has no spread to report: the sd is undefined (null), not 0, and the result line gives none.
    assert set(json.loads((out / "metrics.json").read_text())["test_sd"].values()) == {None}
    assert "over 1 seed(s)" in result.stdout and "±" not in result.stdout
    assert (out / "adapter_model.safetensors").stat().st_size < 0.3 * (base / "model.safetensors").stat().st_size
    assert not (out / "model.safetensors").exists()
    # Its tokenizer loads in transformers with its special tokens, as a whole model's does.
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(out).pad_token == "[PAD]"
    model = load_model(out)
    assert type(model).__name__ == "DNABertForSequenceClassification"
    base_model = load_model(base, head="classification", num_labels=2)
    changed = [n for n, p in model.state_dict().items() if not torch.equal(p, base_model.state_dict()[n])]
    assert any("Wqkv" in n for n in changed) and any("classifier" in n for n in changed)
    assert not any("embeddings" in n for n in changed)  # LoRA leaves the rest of the model alone
    # The commands that score take the adapter folder as they take a merged model.
    predicted = run_cli("predict", "--model", out, "--csv", motif_task / "test.csv", "--out", tmp_path / "p.tsv", "-q")
    assert predicted.returncode == 0, predicted.stderr
    with open(tmp_path / "p.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    sequences = read_task(motif_task)["test"][0]
    with torch.no_grad():
        want = model(torch.tensor([load_tokenizer(out).encode(sequences[0]).ids])).logits.softmax(-1)[0]
    assert len(rows) == len(sequences) and abs(float(rows[0]["p_1"]) - want[1].item()) < 1e-4

    merged = tmp_path / "merged"
    assert run_cli("finetune", "--model", base, "--data", motif_task, "--out", merged, "--lora", "--epochs", 2,
                   "--lr", 1e-3, "--device", "cpu", "--merge", "-q").returncode == 0
    ids = torch.randint(5, 4096, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(load_model(merged)(ids).logits, model(ids).logits)
        # The adapter folder gives the heads the merged folder gives, and checks what it is asked for.
        for head, pooling in (("encoder", None), ("embedding", "max")):
            got = load_model(out, head=head, pooling=pooling)(ids)
            want = load_model(merged, head=head, pooling=pooling)(ids)
            torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state)
        torch.testing.assert_close(load_model(out, head="embedding", pooling="max")(ids).embeddings,
                                   load_model(merged, head="embedding", pooling="max")(ids).embeddings)
    with pytest.raises(UserError, match="the classifier has 2 labels, not 5"):
        load_model(out, num_labels=5)
    with pytest.raises(UserError, match="pools with 'cls', not 'mean'|pools with 'mean', not 'cls'"):
        load_model(out, pooling="cls" if model.config.classifier_pooling == "mean" else "mean")
    # An adapter that lost its head would score with a fresh one, at random: refused.
    headless = tmp_path / "headless"
    shutil.copytree(out, headless)
    weights = load_file(headless / "adapter_model.safetensors")
    save_file({k: v for k, v in weights.items() if ".classifier." not in k}, headless / "adapter_model.safetensors")
    result = run_cli("predict", "--model", headless, "--csv", motif_task / "test.csv", "--out", tmp_path / "h.tsv")
    assert_user_error(result, "no trained classification head")
    assert not (tmp_path / "h.tsv").exists()
    with pytest.raises(UserError, match="no trained classification head"):  # peft cannot load it, whatever the head
        load_model(headless, head="embedding")
    # A folder copied in part: peft took it for a Hub id and failed with a traceback.
    part = tmp_path / "part"
    shutil.copytree(out, part, ignore=shutil.ignore_patterns("adapter_model.safetensors"))
    result = run_cli("predict", "--model", part, "--csv", motif_task / "test.csv", "--out", tmp_path / "part.tsv")
    assert_user_error(result, "a LoRA fine-tuning folder without its adapter_model.safetensors")
    assert not (tmp_path / "part.tsv").exists()
    # An adapter holds no whole model to train further: refused, pointing to --merge.
    for options in ([], ["--lora"]):
        result = run_cli("finetune", "--model", out, "--data", motif_task, "--out", tmp_path / "again", *options)
        assert_user_error(result, "a LoRA adapter", "--merge")
        assert not (tmp_path / "again").exists()


def test_a_damaged_or_mismatched_lora_folder_is_refused_in_one_line(base, motif_task, tmp_path):
    """A truncated adapter and an adapter_config.json that is not JSON gave tracebacks; a folder without
    its finetune.json was said to lack a config.json; a tokenizer.json of another vocabulary of the same
    size, and NaN in the adapter's head, gave other scores, or 'nan' ones, with exit status 0."""
    lora = tmp_path / "lora"
    assert run_cli("finetune", "--model", base, "--data", motif_task, "--out", lora, "--lora", "--epochs", 1,
                   "--device", "cpu", "-q").returncode == 0

    def truncated(folder):
        weights = folder / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])

    def swapped(folder):  # two tokens trade ids: as many tokens, another vocabulary
        tokenizer = json.loads((folder / "tokenizer.json").read_text())
        vocab = tokenizer["model"]["vocab"]
        vocab["A"], vocab["C"] = vocab["C"], vocab["A"]
        (folder / "tokenizer.json").write_text(json.dumps(tokenizer))

    def nan_head(folder):
        state = load_file(folder / "adapter_model.safetensors")
        key = next(k for k in state if "classifier" in k and k.endswith("weight"))
        state[key] = torch.full_like(state[key], float("nan"))
        save_file(state, folder / "adapter_model.safetensors")

    cases = [(truncated, ["adapter_model.safetensors: cannot read the weights"]),
             (lambda folder: (folder / "adapter_config.json").write_text("{"), ["cannot load its LoRA adapter"]),
             (lambda folder: (folder / "finetune.json").unlink(), ["a LoRA adapter without the finetune.json"]),
             (swapped, ["tokenizer.json: vocabulary differs from the model's own"]),
             (nan_head, ["the model's outputs are not finite numbers"])]
    for i, (damage, words) in enumerate(cases):
        folder = shutil.copytree(lora, tmp_path / f"damaged{i}")
        damage(folder)
        out = tmp_path / f"p{i}.tsv"
        assert_user_error(run_cli("predict", "--model", folder, "--csv", motif_task / "test.csv", "--out", out), *words)
        assert not out.exists()
    evaluated = run_cli("evaluate", "--model", tmp_path / f"damaged{len(cases) - 1}", "--data", motif_task,
                        "--baseline", "none", "--out", tmp_path / "t.tsv", "--device", "cpu")
    assert_user_error(evaluated, "the model's outputs are not finite numbers")
    assert not (tmp_path / "t.tsv").exists()


def test_an_adapter_whose_base_model_was_replaced_is_refused(base, motif_task, tmp_path):
    """A base folder pretrained again (`pretrain --force`) holds other weights under the same name:
    the adapter on top of them would answer otherwise, without a word."""
    own = shutil.copytree(base, tmp_path / "base")
    out = tmp_path / "lora"
    assert run_cli("finetune", "--model", own, "--data", motif_task, "--out", out, "--lora", "--epochs", 1,
                   "--device", "cpu", "-q").returncode == 0
    load_model(out)
    torch.manual_seed(123)
    save_model(build_model(preset("tiny"), "mlm"), own, load_tokenizer(TOKENIZER))
    with pytest.raises(UserError, match="has other weights than the adapter was trained on"):
        load_model(out)
    result = run_cli("predict", "--model", out, "--csv", motif_task / "test.csv", "--out", tmp_path / "p.tsv")
    assert_user_error(result, "has other weights than the adapter was trained on")
    assert not (tmp_path / "p.tsv").exists()


def test_an_adapter_whose_base_config_was_edited_is_refused(base, motif_task, tmp_path):
    """The base's config.json shapes every prediction (its classifier pooling, say): an edited one
    changed an adapter's answers with exit 0."""
    own = shutil.copytree(base, tmp_path / "base")
    out = tmp_path / "lora"
    assert run_cli("finetune", "--model", own, "--data", motif_task, "--out", out, "--lora", "--epochs", 1,
                   "--device", "cpu", "-q").returncode == 0
    config = json.loads((own / "config.json").read_text())
    (own / "config.json").write_text(json.dumps(config | {"classifier_pooling": "mean"}))
    result = run_cli("predict", "--model", out, "--csv", motif_task / "test.csv", "--out", tmp_path / "p.tsv")
    assert_user_error(result, "config.json differs from the one the adapter was trained with")
    assert not (tmp_path / "p.tsv").exists()


def test_released_layout_classifier_with_other_labels_is_refused(base, motif_task, tmp_path):
    three = save_model(build_model(preset("tiny", num_labels=3), "classification"), tmp_path / "three",
                       load_tokenizer(TOKENIZER))
    assert_user_error(run_cli("finetune", "--model", three, "--data", motif_task, "--out", tmp_path / "o"),
                      "classifier has 3 labels, not 2")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("rows, words", [
    ([("ACGTX", 0), ("ACGT", 1)], ["train.csv", "line 2", "characters that are no nucleotide (X)"]),
    ([("ACGT", 0), ("ACGT", 0)], ["a single class"]),
    ([("ACGT", 0), ("ACGT", 2)], ["labels must be 0..K-1", "[0, 2]"]),
    ([("ACGT", 0), ("ACGT", "one")], ["line 3", "label 'one' is not a class number"]),
    ([("ACGT", 0), ("", 1)], ["line 3", "an empty sequence"]),
])
def test_bad_task_files(base, tmp_path, rows, words):
    task = write_task(tmp_path / "bad", {"train": rows, "dev": [("ACGT", 0)], "test": [("ACGT", 1)]})
    assert_user_error(run_cli("finetune", "--model", base, "--data", task, "--out", tmp_path / "o"), *words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("label", ["0.5", "1e30", "-1e30"])
def test_labels_that_are_no_class_number_are_named_as_written(tmp_path, label):
    (tmp_path / "train.csv").write_text(f"sequence,label\nACGT,0\nACGT, {label}\n")
    with pytest.raises(UserError, match=rf"line 3: label '{re.escape(label)}' is not a class number"):
        read_split(tmp_path / "train.csv")


def test_task_csvs_read_as_written_rna_iupac_codes_and_blank_lines_included(tmp_path):
    # `tasks` writes a genome's IUPAC codes as they are (the tokenizer reads them as N does); RNA's U is T.
    (tmp_path / "train.csv").write_text("\nsequence,label\nacgu,0\n  \nARYKN,1\r\n\n")
    sequences, labels = read_split(tmp_path / "train.csv")
    assert sequences == ["ACGT", "ARYKN"] and labels.tolist() == [0, 1]
    # A spreadsheet's empty columns (two trailing commas) are no column named twice; a column read is.
    (tmp_path / "train.csv").write_text("sequence,label,,\nACGT,0,,\nACGA,1,,\n")
    assert read_split(tmp_path / "train.csv")[0] == ["ACGT", "ACGA"]
    (tmp_path / "train.csv").write_text("\nlabel,sequence,sequence\n0,ACGT,AAAA\n")
    with pytest.raises(UserError, match="train.csv: the header names column 'sequence' twice"):
        read_split(tmp_path / "train.csv")


@pytest.mark.parametrize("text, message", [
    ("sequence,label\nACGT,0\n\n\nAXGT,1\n", r"line 5: characters that are no nucleotide \(X\)"),
    ("sequence,label\nACGT,0\n,\n", r"line 3: an empty sequence"),
    # R's write.table(sep=","): row names, the header without a field for them.
    ('sequence,label\n"1",ACGT,0\n"2",AAGG,1\n"3",AXGG,1\n', r"line 4: characters that are no nucleotide \(X\)"),
    ('sequence,label\n"1",ACGT,0\n"2",AAGG,x\n', r"line 3: label 'x' is not a class number"),
])
def test_a_bad_row_is_named_by_its_line_in_the_file(tmp_path, text, message):
    (tmp_path / "train.csv").write_text(text)
    with pytest.raises(UserError, match=rf"train.csv: {message}"):
        read_split(tmp_path / "train.csv")


def test_a_byte_that_is_not_utf8_is_named_by_its_line(tmp_path):
    (tmp_path / "train.csv").write_bytes(b"sequence,label\n" + b"ACGT,0\n" * 3000 + b"ACGT,0\xe9\n")
    with pytest.raises(UserError, match=r"train.csv: not a CSV table \(text that is not UTF-8: line 3002, byte 0xe9"):
        read_split(tmp_path / "train.csv")


@pytest.mark.parametrize("options, words", [
    (["--seeds", "-1"], ["--seeds", "must be zero or more"]),
    (["--seeds", "0", "0"], ["a seed given twice"]),
    (["--max-tokens", "2"], ["--max-tokens", "3 or more"]),
    (["--lr", "inf"], ["--lr", "positive number below 1"]),
    (["--lr", "1"], ["--lr", "positive number below 1"]),
])
def test_options_that_cannot_train_are_refused(base, motif_task, tmp_path, options, words):
    result = run_cli("finetune", "--model", base, "--data", motif_task, "--out", tmp_path / "o", "--epochs", 1,
                     "--device", "cpu", "-q", *options)
    assert_user_error(result, *words)
    assert not (tmp_path / "o").exists()


def test_the_workflows_name_for_the_cnn_says_which_command_trains_it(motif_task, tmp_path):
    result = run_cli("finetune", "--model", "cnn", "--data", motif_task, "--out", tmp_path / "o", cwd=tmp_path)
    assert_user_error(result, "--model cnn", "`dnabert2 cnn --data TASK --out DIR`")
    assert not (tmp_path / "o").exists()


def test_a_loss_that_is_no_number_stops_training_with_one_line(base, motif_task, tmp_path):
    """A checkpoint damaged by an earlier run gone wrong: one weight is NaN, so is every loss."""
    damaged = tmp_path / "damaged"
    shutil.copytree(base, damaged)
    weights = load_file(damaged / "model.safetensors")
    weights["bert.embeddings.LayerNorm.weight"][0] = float("nan")
    save_file(weights, damaged / "model.safetensors")
    result = run_cli("finetune", "--model", damaged, "--data", motif_task, "--out", tmp_path / "o", "--epochs", 1,
                     "--device", "cpu", "-q")
    assert_user_error(result, "training diverged", "the loss is nan")
    assert not (tmp_path / "o").exists()


def test_lora_options_on_a_run_that_fine_tunes_every_weight_are_warned_about(base, motif_task, tmp_path):
    result = run_cli("finetune", "--model", base, "--data", motif_task, "--out", tmp_path / "o", "--epochs", 1,
                     "--device", "cpu", "--lora-r", 16, "--merge")
    assert result.returncode == 0, result.stderr
    assert "--lora-r, --merge go with LoRA's adapters, but this run fine-tunes every weight" in result.stderr
    assert "give --lora" in result.stderr


def test_sequences_cut_by_the_token_limit_are_counted_in_a_warning(base, motif_task, tmp_path):
    result = run_cli("finetune", "--model", base, "--data", motif_task, "--out", tmp_path / "o", "--epochs", 1,
                     "--device", "cpu", "--max-tokens", 6)
    assert result.returncode == 0, result.stderr
    assert "400 of 400 training sequences are longer than 6 tokens" in result.stderr
    # Cut for training only: the test figures are the saved model's on whole sequences, as predict gives them.
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    task = read_task(motif_task)
    ids = encode(load_tokenizer(tmp_path / "o"), task["test"][0])
    probabilities = predict(load_model(tmp_path / "o"), ids, task["test"][1], 32, torch.device("cpu"),
                            torch.autocast("cpu", enabled=False))
    assert scores(task["test"][1], probabilities) == pytest.approx(metrics["runs"][0]["test"])
    result = run_cli("finetune", "--model", base, "--data", motif_task, "--out", tmp_path / "p", "--epochs", 1,
                     "--device", "cpu", "--max-tokens", 82)  # 80 bp: at most 80 tokens, [CLS], [SEP]
    assert result.returncode == 0 and "training sequences are longer" not in result.stderr


def test_a_test_split_of_one_class_gets_null_auroc_not_nan(base, tmp_path):
    rows = [("ACGTACGTTT", 0), ("TATAAATTTT", 1)] * 8
    task = write_task(tmp_path / "t", {"train": rows, "dev": rows, "test": [("TATAAAGGGG", 1)] * 4})
    result = run_cli("finetune", "--model", base, "--data", task, "--out", tmp_path / "o", "--epochs", 1,
                     "--device", "cpu", "-q")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "o" / "metrics.json").read_text()
    metrics = json.loads(text)  # strict JSON: no NaN
    assert "NaN" not in text and metrics["test"]["auroc"] is None and metrics["test"]["auprc"] is None
    assert metrics["test"]["accuracy"] is not None
    # MCC is 0 there whatever a model does: undefined, not a score a collapsed model ties a baseline on.
    assert metrics["test"]["mcc"] is None
    result = run_cli("evaluate", "--model", tmp_path / "o", "--data", task, "--out", tmp_path / "e.tsv", "--device",
                     "cpu", "-q")
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "e.md").read_text()
    assert "| undefined | undefined |" in table and "holds one class" in table


def test_a_dev_split_of_one_class_is_refused_before_training(base, tmp_path):
    """Dev MCC is 0 at every epoch there: the first epoch was kept, whatever the later ones learned."""
    rows = [("ACGTACGTTT", 0), ("TATAAATTTT", 1)] * 8
    task = write_task(tmp_path / "t", {"train": rows, "dev": [("TATAAAGGGG", 1)] * 4, "test": rows})
    result = run_cli("finetune", "--model", base, "--data", task, "--out", tmp_path / "o", "--epochs", 1,
                     "--device", "cpu")
    assert_user_error(result, "dev.csv: a single class (1)", "picks the epoch and the seed")
    assert "fine-tuning" not in result.stderr and not (tmp_path / "o").exists()


def test_missing_column_and_file(base, tmp_path):
    task = write_task(tmp_path / "t", {"train": [("ACGT", 0)], "dev": [("ACGT", 0)], "test": [("ACGT", 1)]})
    (task / "train.csv").write_text("sequence,label,sequence\nACGT,0,AAAA\n")
    assert_user_error(run_cli("finetune", "--model", base, "--data", task, "--out", tmp_path / "o"),
                      "train.csv: the header names column 'sequence' twice")
    (task / "train.csv").write_text("seq,label\nACGT,0\n")
    assert_user_error(run_cli("finetune", "--model", base, "--data", task, "--out", tmp_path / "o"), "no sequence column")
    (task / "dev.csv").unlink()
    (task / "train.csv").write_text("sequence,label\nACGT,0\nACGA,1\n")
    assert_user_error(run_cli("finetune", "--model", base, "--data", task, "--out", tmp_path / "o"), "dev.csv")


def test_a_task_description_of_another_kind_is_refused(base, tmp_path):
    """task.json names the kind scanning will place sites for: its labels must be the data's classes."""
    two = [("ACGTACGT", 0), ("ACGTTTGT", 1)]
    task = write_task(tmp_path / "t", {"train": two, "dev": two, "test": [("ACGT", 1)]})
    (task / "task.json").write_text(json.dumps({"task": "splice", "window_bp": 8}))
    assert_user_error(run_cli("finetune", "--model", base, "--data", task, "--out", tmp_path / "o"),
                      "a splice task has 3 labels", "2 classes")
    assert not (tmp_path / "o").exists()
    # Names for three labels of two classes: the model's config.json named them LABEL_i and scans
    # the task's three names.
    (task / "task.json").write_text(json.dumps({"labels": {"0": "a", "1": "b", "2": "c"}}))
    assert_user_error(run_cli("finetune", "--model", base, "--data", task, "--out", tmp_path / "o"),
                      "task.json: names 3 labels (a, b, c), but train.csv has 2 classes")
    assert not (tmp_path / "o").exists()
    # A kind that is no name was a TypeError traceback (unhashable list) from the kinds' registry.
    (task / "task.json").write_text(json.dumps({"task": ["splice"], "window_bp": 8}))
    assert_user_error(run_cli("finetune", "--model", base, "--data", task, "--out", tmp_path / "o"),
                      """task.json: 'task' must be a task kind's name, as "splice", not ["splice"]""")
    assert not (tmp_path / "o").exists()


def test_an_output_folder_of_an_earlier_run_is_refused_then_replaced_whole_with_force(base, motif_task, tmp_path):
    """A LoRA run, then a full one into the same folder: without --force a one-line refusal; with it,
    no adapter file of the first run stays to be merged over the new model."""
    out = tmp_path / "ft"
    common = ["--model", base, "--data", motif_task, "--out", out, "--epochs", 1, "--device", "cpu", "-q"]
    assert run_cli("finetune", *common, "--lora").returncode == 0
    assert not (out / "README.md").exists()  # peft's empty card
    # peft's record of the base, which PeftConfig readers (and the Hub's model page) show
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert (adapter["base_model_name_or_path"], adapter["revision"]) == (str(Path(base).resolve()), None)
    assert_user_error(run_cli("finetune", *common, "--full"), str(out), "already holds", "--force")
    assert (out / "adapter_config.json").is_file()  # untouched
    result = run_cli("finetune", *common, "--full", "--force")
    assert result.returncode == 0, result.stderr
    assert not list(out.glob("adapter_*")) and json.loads((out / "finetune.json").read_text())["adapter"] is False
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "full"
    # What shaped training is recorded, the default learning rate as resolved (the log alone said it).
    assert (metrics["lr"], metrics["epochs"], metrics["batch_size"], metrics["dtype"]) == (default_lr("full", 1), 1, 32,
                                                                                            "fp32")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    # --force replaces the output folder: never one holding the inputs, nor the working folder.
    assert_user_error(run_cli("finetune", "--model", base, "--data", motif_task, "--out", base, "--force"),
                      "holds the input")
    assert_user_error(run_cli("finetune", "--model", base, "--data", motif_task, "--out", ".", "--force",
                              cwd=tmp_path), "working folder")
    assert (base / "model.safetensors").is_file()


def test_outputs_take_the_users_umask(base, motif_task, tmp_path):
    """safetensors writes through mkstemp (mode 0600); colleagues on a shared cluster must read the model."""
    import stat
    import subprocess
    import sys

    out = tmp_path / "shared"
    result = subprocess.run([sys.executable, "-m", "dnabert2", "finetune", "--model", str(base), "--data",
                             str(motif_task), "--out", str(out), "--lora", "--epochs", "1", "--device", "cpu", "-q"],
                            capture_output=True, text=True, umask=0o002)
    assert result.returncode == 0, result.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [out, *out.iterdir()]}
    assert modes == {name: 0o775 if name == "shared" else 0o664 for name in modes}, modes
    assert "adapter_model.safetensors" in modes
    # Loading the adapter (as scan and evaluate do) says nothing of a "new head": the adapter brings it.
    scored = run_cli("evaluate", "--model", out, "--data", motif_task, "--out", tmp_path / "e.tsv", "--device", "cpu")
    assert scored.returncode == 0, scored.stderr
    assert "initialised afresh" not in scored.stderr


def test_a_log_file_hears_from_a_long_epoch(base, motif_task, tmp_path, monkeypatch, caplog):
    """Without a terminal (Snakemake, SLURM) there is no progress bar: a line every 30 s instead."""
    import logging

    from dnabert2 import finetune as module

    monkeypatch.setattr(module, "LOG_EVERY_SECONDS", 0)
    with caplog.at_level(logging.INFO, logger="dnabert2.finetune"):
        module.finetune(base, motif_task, tmp_path / "ft", method="lora", epochs=1, batch_size=100, device="cpu",
                        progress=False)
    assert "seed 0 epoch 1: step 2 of 4, loss" in caplog.text


def test_a_collapsed_classifier_is_said_so(base, motif_task, tmp_path):
    """A model that learned nothing predicts one class; metrics.json, the log and evaluate's table say so.
    (A learning rate of 1e-9 leaves the random head as it is: mechanics.)"""
    out = tmp_path / "flat"
    result = run_cli("finetune", "--model", base, "--data", motif_task, "--out", out, "--full", "--lr", 1e-9,
                     "--epochs", 1, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["collapsed"] is True and "learned nothing" in metrics["warning"] and "--lr" in metrics["warning"]
    assert "--full" not in metrics["warning"]  # it was trained whole
    assert "predicts one class for every dev sequence" in result.stderr
    assert metrics["runs"][0]["history"][0]["dev_one_class"] is True
    table = tmp_path / "eval.tsv"
    result = run_cli("evaluate", "--model", out, "--data", motif_task, "--out", table, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "(one class)" in table.with_suffix(".md").read_text() and "learned nothing" in result.stderr
    three = tmp_path / "three"  # a task of three labels, which this classifier of two does not have
    three.mkdir()
    for split in ("train", "dev", "test"):
        (three / f"{split}.csv").write_text("sequence,label\nACGTACGTAC,0\nTTGACCATGA,1\nGGGCCCAATT,2\n")
    result = run_cli("evaluate", "--model", out, "--data", three, "--out", tmp_path / "three.tsv", "--device", "cpu")
    assert_user_error(result, "a classifier of 2 labels", "has 3")
    learned = json.loads(run_cli("finetune", "--model", base, "--data", motif_task, "--out", tmp_path / "ok", "--full",
                                 "--lr", 1e-3, "--epochs", 4, "--device", "cpu", "-q").returncode == 0
                         and (tmp_path / "ok" / "metrics.json").read_text())
    assert learned["collapsed"] is False


def test_a_small_model_is_fine_tuned_whole_by_default(base, motif_task, tmp_path):
    """LoRA's adapters leave a 1 M-parameter model at one class; by default it is fine-tuned whole, at
    the rate small models learn with."""
    result = run_cli("finetune", "--model", base, "--data", motif_task, "--out", tmp_path / "auto", "--epochs", 1,
                     "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "full, learning rate 0.0005" in result.stderr
    assert json.loads((tmp_path / "auto" / "metrics.json").read_text())["method"] == "full"


def test_a_saved_model_names_its_labels_as_its_task_does(base, motif_task, tmp_path):
    """config.json's id2label, which Hugging Face's loaders and pipelines read, holds task.json's names;
    a model fine-tuned again on a task without names does not keep the earlier task's."""
    import shutil

    named = tmp_path / "named"
    shutil.copytree(motif_task, named)
    (named / "task.json").write_text(json.dumps({"labels": {"0": "background", "1": "tata"}}))
    for model, task, out in ((base, named, "first"), (tmp_path / "first", motif_task, "again")):
        result = run_cli("finetune", "--model", model, "--data", task, "--out", tmp_path / out, "--full", "--epochs", 1,
                         "--device", "cpu", "-q")
        assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "first" / "config.json").read_text())["id2label"] == {"0": "background", "1": "tata"}
    assert load_model(tmp_path / "first").config.id2label == {0: "background", 1: "tata"}
    assert json.loads((tmp_path / "again" / "config.json").read_text())["id2label"] == {"0": "LABEL_0", "1": "LABEL_1"}


def test_a_seed_with_dev_score_zero_beats_a_negative_one():
    """0.0 is a score (a collapsed seed's MCC), not undefined: the seed saved is the best by dev score."""
    from dnabert2.finetune import _dev

    assert _dev({"dev_mcc": 0.0}, "mcc") > _dev({"dev_mcc": -0.05}, "mcc") > _dev({"dev_mcc": None}, "mcc")

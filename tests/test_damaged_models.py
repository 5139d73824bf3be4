"""Model folders damaged on disk or mismatched with the files beside them: NaN weights (a diverged run,
a bad copy), truncated weight files, a task.json of another model. Each command that reads such a
folder stops with one line and leaves no output, where before some wrote scores of 0, no calls or
'nan' rows and exited 0."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import assert_user_error, run_cli, scan_classifier
from dnabert2.sequences import Fasta

NOT_FINITE = "the model's outputs are not finite numbers (NaN or infinity): are its weights intact?"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return scan_classifier(tmp_path_factory.mktemp("classifier") / "splice", window=300)


def poisoned(model, out, key, rows=None):
    """A copy of a model folder with the weight `key` NaN (only `rows` of it, given them)."""
    shutil.copytree(model, out)
    state = load_file(out / "model.safetensors")
    if rows is None:
        state[key] = torch.full_like(state[key], float("nan"))
    else:
        state[key][rows] = float("nan")
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    return out


def genome(folder):
    (folder / "g.fa").write_text(">c\n" + "ACGTTAGGTAAGCCATTTCAGGT" * 40 + "\n")
    return folder / "g.fa"


@pytest.mark.parametrize("command, options, output", [
    ("scan", ["--fasta", "{genome}", "--top-k", 5, "--out", "{out}/calls.bed", "--bedgraph", "{out}/tracks"], "calls.bed"),
    ("predict", ["--fasta", "{genome}", "--out", "{out}/scores.tsv"], "scores.tsv"),
    ("mutagenesis", ["--fasta", "{genome}", "--region", "c:101-160", "--out", "{out}/snvs.tsv", "--plot",
                     "{out}/snvs.svg"], "snvs.tsv"),
    ("embed", ["--fasta", "{genome}", "--out", "{out}/vectors.npz"], "vectors.npz"),
])
def test_a_window_classifier_with_nan_weights_is_refused(classifier, tmp_path, command, options, output):
    """The word embedding of one token NaN, a token of the forward strand's windows (GGTAA), not of the
    reverse strand's: some scores are NaN, others look sound."""
    token = json.loads((classifier / "tokenizer.json").read_text())["model"]["vocab"]["GGTAA"]
    model = poisoned(classifier, tmp_path / "model", "bert.embeddings.word_embeddings.weight", [token])
    out = tmp_path / "out"
    out.mkdir()
    words = {"genome": genome(tmp_path), "out": out}
    result = run_cli(command, "--model", model, *[str(o).format(**words) for o in options], "--device", "cpu")
    assert_user_error(result, NOT_FINITE)
    assert not list(out.iterdir())


def test_a_per_base_model_with_nan_weights_is_refused_by_scan_and_variants(cnn, ce1pct, tmp_path):
    """The CNN with one NaN kernel: a scan of it gave no calls, tracks of 0 and exit status 0."""
    model = poisoned(cnn, tmp_path / "model", next(k for k in load_file(cnn / "model.safetensors") if "weight" in k))
    out = tmp_path / "out"
    out.mkdir()
    scanned = run_cli("scan", "--model", model, "--fasta", ce1pct, "--contigs", "MtDNA",
                      "--out", out / "calls.bed", "--bigwig", out / "tracks", "--top-k", 5)
    assert_user_error(scanned, NOT_FINITE)
    with Fasta(ce1pct) as fasta:
        ref = fasta.fetch("IV", 4999, 5000)
    (tmp_path / "v.vcf").write_text("##fileformat=VCFv4.2\n##contig=<ID=IV>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\t"
                                    f"INFO\nIV\t5000\t.\t{ref}\t{'G' if ref != 'G' else 'A'}\t.\t.\t.\n")
    varied = run_cli("variants", "--model", model, "--fasta", ce1pct, "--vcf", tmp_path / "v.vcf",
                     "--out", out / "scored.vcf.gz")
    assert_user_error(varied, NOT_FINITE)
    assert not list(out.iterdir())


@pytest.mark.parametrize("model", ["classifier", "cnn"])
def test_a_truncated_weights_file_is_one_line(request, tmp_path, model):
    folder = shutil.copytree(request.getfixturevalue(model), tmp_path / "model")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])
    result = run_cli("predict", "--model", folder, "--fasta", genome(tmp_path), "--out", tmp_path / "s.tsv")
    assert_user_error(result, "model")
    assert not (tmp_path / "s.tsv").exists()


def test_a_window_classifiers_task_json_must_name_each_label_it_scores(classifier, tmp_path):
    """Two names for three outputs: the third label was called by its number, '2', with exit status 0."""
    model = shutil.copytree(classifier, tmp_path / "model")
    described = json.loads((model / "task.json").read_text())
    (model / "task.json").write_text(json.dumps({**described, "labels": {"0": "neither", "1": "donor"}}))
    result = run_cli("scan", "--model", model, "--fasta", genome(tmp_path), "--out", tmp_path / "c.bed")
    assert_user_error(result, "model/task.json names 2 labels (0, 1), but the model scores 3 (0 to 2)")
    assert not (tmp_path / "c.bed").exists()

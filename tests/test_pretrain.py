"""Masked-LM pretraining: the data a step sees, the masking recipe, the command's outputs, exact
resume after an interruption, two Gloo processes against one, and bad input."""

import errno
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import DATA, ROOT, assert_stopped, assert_user_error, run_cli, run_patched
from dnabert2 import load_model, load_tokenizer
from dnabert2.errors import UserError
from dnabert2.model import build_model, preset, save_model
from dnabert2.sequences import Fasta
from dnabert2.pretrain.data import EVAL, TRAIN, PretrainSteps, WindowSampler, WindowSpec, mask_tokens
from dnabert2.pretrain.train import rules_fingerprint

TOKENIZER = DATA / "tokenizers" / "dnabert2_117m_tokenizer.json"


@pytest.fixture
def genome(ce1pct):
    return ce1pct


def pretrain_args(genome, out, *extra):
    window = [] if {"--window-bp", "--window-tokens"} & set(extra) else ["--window-tokens", 64]
    return ["pretrain", "--genome", genome, "--tokenizer", TOKENIZER, "--out", out, "--batch-size", 8, *window,
            "--workers", 0, "--lr", 2e-3, "-q", *extra]


def losses(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(resumed, whole):
    """A resumed run's losses and weights are the uninterrupted run's, to float rounding: bit for bit is
    the maths library's to give (twice in CI a loss came out 1 ulp apart, likely MKL's first-call race
    that dnabert2/devices.py works around), while other windows, masks or dropout draws, or a lost
    optimiser or schedule state, move the losses by 0.2% or more."""
    assert [r["loss"] for r in losses(resumed)] == pytest.approx([r["loss"] for r in losses(whole)], rel=1e-6, abs=0)
    expected, found = load_model(whole).state_dict(), load_model(resumed).state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(found[key], value, rtol=0, atol=1e-5, msg=key)


def test_masking_follows_the_bert_recipe():
    ids = [1, *range(5, 1005), 2]
    masked, replaced, kept, scored = 0, 0, 0, 0
    for seed in range(20):
        inputs, labels = mask_tokens(ids, np.random.default_rng(seed), vocab_size=4096)
        chosen = labels != -100
        assert chosen.sum() == 150  # 15% of the 1,000 regular tokens
        assert not chosen[0] and not chosen[-1]  # [CLS] and [SEP] are never masked
        assert (labels[chosen] == np.array(ids)[chosen]).all()
        assert (inputs[~chosen] == np.array(ids)[~chosen]).all()
        masked += (inputs[chosen] == 4).sum()
        kept += (inputs[chosen] == labels[chosen]).sum()
        replaced += ((inputs[chosen] != 4) & (inputs[chosen] != labels[chosen])).sum()
        scored += chosen.sum()
        assert inputs.min() >= 1 and inputs.max() < 4096
    assert masked / scored == pytest.approx(0.8, abs=0.03)
    assert replaced / scored == pytest.approx(0.1, abs=0.02)  # a random token (rarely the same one)
    assert kept / scored == pytest.approx(0.1, abs=0.02)


def test_windows_skip_n_respect_held_out_contigs_and_use_both_strands(tmp_path):
    rng = np.random.default_rng(0)
    clean = "".join(rng.choice(list("ACGT"), 5000))
    fasta = tmp_path / "g.fa"
    fasta.write_text(f">clean\n{clean}\n>gappy\n{'N' * 3000}{clean[:2000]}\n>held\n{clean[::-1]}\n")
    sampler = WindowSampler([fasta], None, 200, heldout_contigs=["held"], split=TRAIN, max_n=0.05)
    draws = [sampler.draw(np.random.default_rng(i)) for i in range(400)]
    assert {contig for contig, *_ in draws} == {"clean", "gappy"}
    assert {strand for _, _, strand, _ in draws} == {"+", "-"}
    assert all(seq.count("N") <= 10 and len(seq) == 200 for *_, seq in draws)
    held = WindowSampler([fasta], None, 200, heldout_contigs=["held"], split=EVAL)
    assert {held.draw(np.random.default_rng(i))[0] for i in range(50)} == {"held"}
    with pytest.raises(UserError, match="held-out contigs in none of the genomes: chrZ"):
        WindowSampler([fasta], None, 200, heldout_contigs=["chrZ"])
    with pytest.raises(UserError, match="no contig \\(held-out ones aside\\) is as long as one window"):
        WindowSampler([fasta], None, 6000)


def gapped(genome, folder, gap: int, every: int):
    """The first 60 kb of chromosome I with a run of `gap` N every `every` bases."""
    with Fasta(genome) as fasta:
        sequence = fasta.fetch("I", 0, 60_000)
    path = folder / "gapped.fa"
    path.write_text(">I\n" + "".join(sequence[i:i + every - gap] + "N" * gap
                                     for i in range(0, len(sequence), every)) + "\n")
    return path


def test_max_n_holds_over_the_bases_a_window_keeps_of_what_was_drawn(genome, tmp_path):
    """A window in tokens is drawn long (6 bp a token) and cut to its tokens: 36 N in each 768 bp pass
    5% over the drawn bases but not over the ~250 kept, and the kept bases are what --max-n must bound."""
    tokenizer = load_tokenizer(TOKENIZER)
    sampler = WindowSampler([gapped(genome, tmp_path, 36, 768)], None, 6 * 64, max_n=0.05)
    # One token masked a window, its original in the labels: the windows' ids read back whole.
    steps = PretrainSteps(sampler, tokenizer, WindowSpec(tokens=64), 8, 4096, seed=0, mask_rate=1e-9)
    for inputs, labels in steps.examples(TRAIN, 0, range(300)):
        tokens = [tokenizer.id_to_token(int(i)) for i in np.where(labels != -100, labels, inputs)[1:-1]]
        n = tokens.count("[UNK]")  # each N one [UNK] in this tokenizer
        assert n <= 0.05 * (n + sum(len(t) for t in tokens if t != "[UNK]"))
    # Drawn alone, windows do hold more N than that in their kept bases: the case the check is for.
    drawn = [sampler.draw(np.random.default_rng(i))[-1] for i in range(300)]
    kept = [s[:tokenizer.encode(s, add_special_tokens=False).offsets[61][1]] for s in drawn]  # 62 of 64 tokens
    assert any(read.count("N") > 0.05 * len(read) for read in kept)


def test_a_step_over_gaps_logs_a_finite_loss(genome, tmp_path):
    """Windows of many N once left micro-batches with no scored token, whose loss was NaN in
    metrics.jsonl (not JSON); every kept window now holds bases to learn from."""
    out = tmp_path / "m"
    # A micro-batch a window: one drawn in the first bases of a 150 N gap kept 126 [UNK] tokens alone.
    result = run_cli(*pretrain_args(gapped(genome, tmp_path, 150, 2000), out, "--steps", 30, "--batch-size", 4,
                                    "--max-n", 0.2, "--window-tokens", 128, "--batch-tokens", 128))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in metrics.jsonl"))
            for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, 31)) and all(row["loss"] > 0 for row in rows)


def test_a_genome_too_large_for_memory_is_read_by_region_into_the_same_windows(genome, monkeypatch):
    in_memory = WindowSampler([genome], None, 300)
    monkeypatch.setattr("dnabert2.pretrain.data.IN_MEMORY_BP", 1000)
    by_region = WindowSampler([genome], None, 300)
    assert in_memory._memory is not None and by_region._memory is None
    draws = [(s.draw(np.random.default_rng(i)), i) for s in (in_memory, by_region) for i in range(50)]
    assert [d for d, _ in draws[:50]] == [d for d, _ in draws[50:]]


def test_a_step_is_the_same_whoever_draws_it(genome):
    tokenizer = load_tokenizer(TOKENIZER)
    sampler = WindowSampler([genome], None, WindowSpec(tokens=64).draw_bp)
    spec = WindowSpec(tokens=64)

    def windows(rank, world, max_tokens=10_000):
        batches = PretrainSteps(sampler, tokenizer, spec, 8, max_tokens, seed=3, rank=rank, world=world)[7]
        return [tuple(ids.tolist()) for b in batches for ids in b["input_ids"].split(b["cu_seqlens"].diff().tolist())]

    one = windows(0, 1)
    assert len(one) == 8 and all(len(w) == 64 and w[0] == 1 and w[-1] == 2 for w in one)
    assert windows(0, 1) == one  # the same step again: the same windows and masks
    assert sorted(windows(0, 2) + windows(1, 2)) == sorted(one)  # two ranks split one global batch
    assert sorted(windows(0, 1, max_tokens=130)) == sorted(one)  # micro-batches of two windows: same data
    other = PretrainSteps(sampler, tokenizer, spec, 8, 10_000, seed=3)[8]
    assert other[0]["input_ids"].tolist() != PretrainSteps(sampler, tokenizer, spec, 8, 10_000, seed=3)[7][0]["input_ids"].tolist()


def test_a_run_continued_with_init_draws_new_training_windows_and_the_same_held_out_ones(genome, tmp_path):
    """--init with the seed of the run it continues drew and masked that run's windows again, from step
    1: it trained on what the model had seen, its loss looking better than it was. Its held-out
    windows stay the run's, so the two runs' held-out losses compare."""
    first = tmp_path / "first"
    assert run_cli(*pretrain_args(genome, first, "--steps", 2, "--heldout-contigs", "V", "--eval-windows", 4)
                   ).returncode == 0
    patch = ("from dnabert2.pretrain import data\nexamples = data.PretrainSteps.examples\n"
             "def logged(self, stream, step, indices, sampler=None):\n    got = examples(self, stream, step, indices, sampler)\n"
             "    print('windows', stream, step, [ids.tolist() for ids, _ in got], file=sys.stderr)\n    return got\n"
             "data.PretrainSteps.examples = logged")
    drawn = {}
    for name, init in (("again", ()), ("continued", ("--init", first))):
        result = run_patched(patch, *pretrain_args(genome, tmp_path / name, "--steps", 1, "--heldout-contigs", "V",
                                                   "--eval-windows", 4, *init))
        assert result.returncode == 0, result.stderr
        drawn[name] = {tuple(line.split(" ", 3)[1:3]): line.split(" ", 3)[3] for line in result.stderr.splitlines()
                       if line.startswith("windows ")}
    assert drawn["again"][str(TRAIN), "1"] != drawn["continued"][str(TRAIN), "1"]
    assert drawn["again"][str(EVAL), "0"] == drawn["continued"][str(EVAL), "0"]


def test_an_init_run_checkpointed_before_it_drew_its_own_windows_resumes_with_a_warning(genome, tmp_path):
    first = tmp_path / "first"
    assert run_cli(*pretrain_args(genome, first, "--steps", 1)).returncode == 0
    args = ("--init", first, "--steps", 3, "--checkpoint-every", 1, "--keep", 3)
    assert run_cli(*pretrain_args(genome, tmp_path / "run", *args)).returncode == 0
    checkpoints = tmp_path / "run" / "checkpoints"
    (checkpoints / "step-00000003.pt").unlink()
    state = torch.load(checkpoints / "step-00000002.pt", weights_only=False)
    assert state["settings"].pop("init_windows") == "own"  # as a checkpoint written before it was recorded
    torch.save(state, checkpoints / "step-00000002.pt")
    resumed = run_cli(*pretrain_args(genome, tmp_path / "run", *args, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert "step-00000002.pt was written before a run continued with --init drew training windows of its own" \
        in resumed.stderr


def test_compiled_pretraining_matches_eager(genome, tmp_path):
    # --compile runs the model under torch.compile (Inductor compiles it for the CPU here): the same
    # losses as eager mode up to float rounding, and a model folder that loads like any other.
    runs = {}
    for name, extra in (("eager", ()), ("compiled", ("--compile",))):
        result = run_cli(*pretrain_args(genome, tmp_path / name, "--steps", 3, "--dropout", 0, *extra))
        assert result.returncode == 0, result.stderr
        runs[name] = [row["loss"] for row in losses(tmp_path / name)]
    assert runs["compiled"] == pytest.approx(runs["eager"], rel=1e-3)
    assert load_model(tmp_path / "compiled").state_dict().keys() == load_model(tmp_path / "eager").state_dict().keys()


def test_pretrain_writes_a_model_and_metrics(genome, tmp_path):
    out = tmp_path / "model"
    result = run_cli(*pretrain_args(genome, out, "--steps", 12, "--heldout-contigs", "V", "--eval-every", 6,
                                    "--eval-windows", 16, "--log-every", 4, "--warmup", 0.25))
    assert result.returncode == 0, result.stderr
    rows = losses(out)
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.5  # it learns
    assert rows[0]["loss"] == pytest.approx(np.log(4096), abs=0.4)  # starts near chance
    assert {"eval_loss", "eval_accuracy", "eval_perplexity"} <= rows[5].keys() <= rows[-1].keys()
    assert rows[-1]["eval_perplexity"] == pytest.approx(np.exp(rows[-1]["eval_loss"]))
    assert all("tokens_per_s" in rows[i] for i in (3, 7, 11))
    # The rate each step used: warm-up over 3 steps to the peak (once), then linear decay towards zero.
    expected = [2e-3 * f for f in (1 / 3, 2 / 3, 1, *[(12 - s) / 10 for s in range(3, 12)])]
    assert [r["lr"] for r in rows] == pytest.approx(expected)
    model = load_model(out)
    assert type(model).__name__ == "DNABertForMaskedLM" and model.config.hidden_size == 128
    assert (out / "tokenizer.json").read_text() == TOKENIZER.read_text() or load_tokenizer(out).get_vocab() == \
        load_tokenizer(TOKENIZER).get_vocab()
    assert [p.name for p in (out / "checkpoints").glob("step-*.pt")] == ["step-00000012.pt"]


def test_a_finished_model_folder_is_refused_then_replaced_whole_with_force(genome, tmp_path):
    out = tmp_path / "model"
    assert run_cli(*pretrain_args(genome, out, "--steps", 2, "--checkpoint-dir", tmp_path / "c1")).returncode == 0
    (out / "adapter_config.json").write_text("{}")  # what a fine-tuning run would have left there
    again = pretrain_args(genome, out, "--steps", 3, "--checkpoint-dir", tmp_path / "c2")
    assert_user_error(run_cli(*again), "already holds", "--force")
    assert run_cli(*again, "--force").returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.jsonl", "model.safetensors",
                                                     "special_tokens_map.json", "tokenizer.json",
                                                     "tokenizer_config.json"]
    assert [r["step"] for r in losses(out)] == [1, 2, 3]


def test_checkpoints_anywhere_inside_the_output_folder_survive_it(genome, tmp_path):
    out = tmp_path / "model"
    deep = out / "state" / "run1"
    assert run_cli(*pretrain_args(genome, out, "--steps", 2, "--checkpoint-dir", deep)).returncode == 0
    assert [p.name for p in deep.glob("step-*.pt")] == ["step-00000002.pt"] and (out / "model.safetensors").is_file()
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m2", "--checkpoint-dir", tmp_path / "m2")),
                      "cannot be the output folder itself")


def test_a_checkpoint_written_before_the_model_type_rename_resumes(genome, tmp_path):
    """Checkpoints record the model's config; it said model_type bert before folders said dnabert2.
    A run stopped then, and resumed now, continues."""
    out = tmp_path / "model"
    args = ("--steps", 4, "--checkpoint-every", 2)
    assert run_cli(*pretrain_args(genome, out, *args)).returncode == 0
    for path in (out / "checkpoints").glob("step-*.pt"):
        state = torch.load(path, weights_only=False)
        state["settings"]["model"]["model_type"] = "bert"
        torch.save(state, path)
    (out / "checkpoints" / "step-00000004.pt").unlink()
    resumed = run_cli(*pretrain_args(genome, out, *args, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert [r["step"] for r in losses(out)] == [1, 2, 3, 4]


def test_an_interrupted_run_resumes_as_if_uninterrupted(genome, tmp_path):
    args = ("--steps", 40, "--checkpoint-every", 5, "--dropout", 0.1, "--workers", 1, "--heldout-contigs", "V",
            "--eval-every", 10, "--eval-windows", 8)
    whole = tmp_path / "whole"
    assert run_cli(*pretrain_args(genome, whole, *args)).returncode == 0

    cut = tmp_path / "cut"
    process = subprocess.Popen([sys.executable, "-m", "dnabert2", *map(str, pretrain_args(genome, cut, *args))],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not list((cut / "checkpoints").glob("step-*.pt")) and time.time() < deadline:
        time.sleep(0.01)
    # Stopped part-way as SLURM stops a job: SIGTERM to every process, its DataLoader worker too (whose
    # death torch reported, while the run unwound, as a traceback and exit 1).
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate()
    assert_stopped(subprocess.CompletedProcess(process.args, process.returncode, "", stderr), "pretrain",
                   signal.SIGTERM)
    assert not (cut / "model.safetensors").exists()
    stopped_at = max(r["step"] for r in losses(cut / "checkpoints"))
    assert stopped_at < 40

    resumed = run_cli(*pretrain_args(genome, cut, *args, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert [r["step"] for r in losses(cut)] == list(range(1, 41))
    assert_same_run(cut, whole)


@pytest.mark.parametrize("window", [(), ("--window-bp", 300)])  # bp windows: it was refused, as another window
def test_a_resume_with_other_batch_tokens_goes_on_and_says_it_is_not_bit_for_bit(genome, tmp_path, window):
    args = ("--steps", 4, "--checkpoint-every", 2, "--workers", 0, "--batch-tokens", 4096, *window)
    assert run_cli(*pretrain_args(genome, tmp_path / "run", *args)).returncode == 0
    resumed = run_cli(*pretrain_args(genome, tmp_path / "run", *args, "--resume", "--batch-tokens", 2048))
    assert resumed.returncode == 0, resumed.stderr
    assert "--batch-tokens 2048 is not the checkpoint's 4096: the run goes on, but not bit for bit" in resumed.stderr


def test_a_resume_with_other_eval_windows_trains_as_it_would_have(genome, tmp_path):
    # The held-out set draws no training window: the workflow reruns a job whose --eval-windows
    # changed, and a resume (not a start afresh under --force) keeps its checkpoints.
    args = ("--steps", 4, "--checkpoint-every", 2, "--heldout-contigs", "V", "--eval-every", 2, "--resume", "--force")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert run_cli(*pretrain_args(genome, whole, *args, "--eval-windows", 8)).returncode == 0
    assert run_cli(*pretrain_args(genome, cut, *args, "--eval-windows", 4)).returncode == 0
    (cut / "checkpoints" / "step-00000004.pt").unlink()  # as if stopped after step 2
    resumed = run_cli(*pretrain_args(genome, cut, *args, "--eval-windows", 8))
    assert resumed.returncode == 0, resumed.stderr
    assert "starting afresh" not in resumed.stderr, resumed.stderr
    assert "--eval-windows 8 is not the checkpoint's 4: evaluations from here on" in resumed.stderr
    assert_same_run(cut, whole)


def test_two_gloo_processes_match_one_with_their_combined_batch(genome, tmp_path):
    # Micro-batches of two windows (accumulation), evaluation and a mid-run checkpoint: every
    # collective the loop makes runs on both ranks.
    args = ("--steps", 4, "--dropout", 0, "--batch-size", 8, "--device", "cpu", "--max-tokens", 150,
            "--workers", 1, "--heldout-contigs", "V", "--eval-every", 2, "--eval-windows", 8, "--checkpoint-every", 2)
    single = run_cli(*pretrain_args(genome, tmp_path / "one", *args))
    assert single.returncode == 0, single.stderr
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))

    def two_ranks(*more, quiet=True):
        words = [str(a) for a in pretrain_args(genome, tmp_path / "two", *args, *more) if quiet or a != "-q"]
        return subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "dnabert2", *words],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})

    two = two_ranks()
    assert two.returncode == 0, two.stderr[-3000:]
    resumed = two_ranks("--resume", quiet=False)  # from the last checkpoint: nothing left to run, said once
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("resuming from") == 1, resumed.stderr
    # None whole: rank 0 decides, both start afresh together (none waits for the other forever).
    for damaged in (tmp_path / "two" / "checkpoints").glob("step-*.pt"):
        damaged.write_bytes(b"")
    afresh = two_ranks("--resume", "--force", quiet=False)
    assert afresh.returncode == 0, afresh.stderr[-3000:]
    assert afresh.stderr.count("--force, so starting afresh") == 1, afresh.stderr
    one_rows, two_rows = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert [r["step"] for r in two_rows] == [1, 2, 3, 4]
    for a, b in zip(one_rows, two_rows):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert two_rows[1]["eval_loss"] == pytest.approx(one_rows[1]["eval_loss"], rel=1e-5)
    one, two = load_model(tmp_path / "one").state_dict(), load_model(tmp_path / "two").state_dict()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)


def test_held_out_contigs_of_n_stop_every_rank_in_one_line(tmp_path):
    """The held-out windows were drawn on rank 0 alone: it stopped with the error, and rank 1 in a
    traceback of the collective rank 0 left."""
    rng = np.random.default_rng(3)
    genome = tmp_path / "g.fa"
    genome.write_text(f">clean\n{''.join(rng.choice(list('ACGT'), 5000))}\n>gaps\n{'N' * 2000}\n")
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    words = [str(a) for a in pretrain_args(genome, tmp_path / "m", "--steps", 2, "--device", "cpu",
                                           "--heldout-contigs", "gaps")]
    result = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "dnabert2", *words],
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode != 0
    assert result.stderr.count("its held-out contigs are mostly N") == 2, result.stderr[-3000:]
    # torchrun's own traceback of a failed child stays; none comes from a rank (our code's frames).
    assert not re.search(r'File ".*/dnabert2/', result.stderr), result.stderr[-3000:]
    assert not (tmp_path / "m").exists()


def test_a_rank_left_alone_by_another_says_so_in_one_line(genome, tmp_path):
    """Rank 1 stopped by its error mid-run: rank 0, in a collective rank 1 left, gave gloo's traceback.
    torchrun may instead stop rank 0 first (terminated); either way no frame of ours is shown."""
    script = tmp_path / "fail.py"
    script.write_text("import os, sys\nfrom dnabert2 import cli\nfrom dnabert2.errors import UserError\n"
                      "from dnabert2.pretrain.train import TrainingLoop\nstep = TrainingLoop.step\n"
                      "def failing(self, batches):\n"
                      "    if os.environ['RANK'] == '1':\n        raise UserError('rank 1 stops here')\n"
                      "    return step(self, batches)\n"
                      "TrainingLoop.step = failing\nsys.exit(cli.main(sys.argv[1:]))\n")
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    words = [str(a) for a in pretrain_args(genome, tmp_path / "m", "--steps", 2, "--device", "cpu")]
    result = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", script, *words], capture_output=True,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert result.returncode != 0
    assert result.stderr.count("dnabert2 pretrain: error: rank 1 stops here") == 1, result.stderr[-3000:]
    assert re.search(r"dnabert2 pretrain: (error: rank 0: another process of this run stopped or cannot be reached|terminated)",
                     result.stderr), result.stderr[-3000:]
    assert not re.search(r'File ".*/dnabert2/', result.stderr), result.stderr[-3000:]
    assert not (tmp_path / "m").exists()


def test_gloos_words_for_a_rank_gone_are_told_from_other_errors():
    """A survivor of a SIGKILLed rank reads "Connection reset by peer" (or "closed by peer", or on a
    write "Broken pipe") in gloo's error, where it gave a traceback rather than the one line."""
    from dnabert2.pretrain.train import peer_lost

    for text in ("[gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:40712: Connection reset by peer",
                 "[gloo/transport/tcp/unbound_buffer.cc:81] Timed out waiting 1800000ms: Connection closed by peer",
                 "[gloo/transport/tcp/pair.cc:598] Write error [127.0.0.1]:40712: Broken pipe"):
        assert peer_lost(RuntimeError(text))
    assert not peer_lost(RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x8 and 16x8)"))


def test_bad_input_gets_one_line_and_no_checkpoint(genome, tmp_path):
    out = tmp_path / "m"
    assert_user_error(run_cli(*pretrain_args(genome, out, "--window-bp", 300000)), "no contig", "300000 bp")
    assert not out.exists()
    assert_user_error(run_cli(*pretrain_args(genome, out, "--device", "cuda")), "cuda was asked for")
    assert not out.exists()

    other_vocab = save_model(build_model(preset("tiny", vocab_size=64), "mlm"), tmp_path / "vocab64")
    assert_user_error(run_cli(*pretrain_args(genome, out, "--init", other_vocab)),
                      "vocabulary of 4096 tokens does not match the model's 64")

    first = run_cli(*pretrain_args(genome, out, "--steps", 2))
    assert first.returncode == 0, first.stderr
    # What a fragmented assembly leaves out is said, even under -q: here MtDNA's 137 bp.
    assert "1 contig(s) shorter than a window (384 bp) give no training windows: MtDNA (0.014% of the genome's " \
           "bases)" in first.stderr
    assert_user_error(run_cli(*pretrain_args(genome, out, "--steps", 2)), "pass --resume")
    assert_user_error(run_cli(*pretrain_args(genome, out, "--steps", 2, "--lr", 1e-3, "--resume")),
                      "checkpoint of another configuration", "lr: 0.002 in the checkpoint, 0.001 now")
    assert_user_error(run_cli(*pretrain_args(genome, out, "--steps", 2, "--dtype", "bf16", "--resume")),
                      "precision: 'fp32' in the checkpoint, 'bf16' now")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["metrics.jsonl", "step-00000002.pt"]
    # The same genome at another path (data moved to another node) continues the run: known by its contigs.
    moved = tmp_path / "moved"
    moved.mkdir()
    for file in genome.parent.glob(genome.name + "*"):
        shutil.copy(file, moved / file.name)
    resumed = run_cli(*pretrain_args(moved / genome.name, out, "--steps", 2, "--resume"))
    assert resumed.returncode == 0, resumed.stderr


def test_a_checkpoint_cut_off_while_written_is_ignored(genome, tmp_path):
    # Killed while writing step 4: the previous checkpoint (step 2) is whole and the run resumes from it.
    out = tmp_path / "m"
    assert run_cli(*pretrain_args(genome, out, "--steps", 4, "--checkpoint-every", 2)).returncode == 0
    folder = out / "checkpoints"
    # What a kill during torch.save leaves: the temporary file, never the final name.
    (folder / "step-00000004.pt").rename(folder / f".step-00000004.pt.{os.getpid()}.tmp")
    with open(folder / "metrics.jsonl", "a") as metrics:
        metrics.write('{"step": 5, "lo')  # a line cut off by the same kill
    again = run_cli(*pretrain_args(genome, out, "--steps", 4, "--checkpoint-every", 2, "--resume"))
    assert again.returncode == 0, again.stderr
    assert [r["step"] for r in losses(out)] == [1, 2, 3, 4]
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.jsonl", "step-00000002.pt", "step-00000004.pt"]


@pytest.mark.skipif(__import__("importlib").util.find_spec("tensorboard") is not None, reason="tensorboard is installed")
def test_tensorboard_without_the_package(genome, tmp_path):
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--steps", 2, "--tensorboard")),
                      "needs the tensorboard package")
    # Refused before --force removes an earlier run's checkpoints, which would leave nothing to resume.
    assert run_cli(*pretrain_args(genome, tmp_path / "m", "--steps", 2, "--checkpoint-every", 2)).returncode == 0
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--steps", 2, "--tensorboard", "--force")),
                      "needs the tensorboard package")
    assert (tmp_path / "m" / "checkpoints" / "step-00000002.pt").is_file()


def test_genomes_are_drawn_by_weight(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.fa"
        path.write_text(f">{name}\n{''.join(rng.choice(list('ACGT'), 3000))}\n")
        paths.append(path)
    sampler = WindowSampler(paths, [3, 1], 100)
    drawn = [sampler.draw(np.random.default_rng(i))[0] for i in range(800)]
    assert drawn.count("a") / len(drawn) == pytest.approx(0.75, abs=0.05)
    with pytest.raises(UserError, match="one positive weight per genome"):
        WindowSampler(paths, [1], 100)


def test_a_genome_gives_its_weights_share_of_windows_however_much_of_it_is_n(tmp_path):
    """A window redrawn for its N was drawn from a genome chosen again, so a genome half N gave about a
    third of the windows at equal weights, and one of N alone none, unsaid; each gives its share now
    (windows and the cut to tokens alike), and a genome of N alone is refused by name."""
    rng = np.random.default_rng(2)
    clean, gapped, blank = tmp_path / "clean.fa", tmp_path / "gapped.fa", tmp_path / "blank.fa"
    clean.write_text(f">clean\n{''.join(rng.choice(list('ACGT'), 6000))}\n")
    gapped.write_text(f">gapped\n{''.join(rng.choice(list('ACGT'), 3000))}{'N' * 3000}\n")
    blank.write_text(">blank\n" + "N" * 6000 + "\n")
    sampler = WindowSampler([clean, gapped], None, 100)
    drawn = [sampler.draw(np.random.default_rng(i))[0] for i in range(1000)]
    assert drawn.count("gapped") / len(drawn) == pytest.approx(0.5, abs=0.05)
    # Windows drawn long and cut to tokens: one redrawn for the N its tokens keep stays in its genome.
    drawn, draw = [], sampler.draw
    sampler.draw = lambda rng, genome=None: drawn.append((id(rng), genome)) or draw(rng, genome)
    steps = PretrainSteps(sampler, load_tokenizer(TOKENIZER), WindowSpec(tokens=16), 400, 10_000, seed=0)
    assert len(steps.examples(TRAIN, 0, range(400))) == 400
    genomes = dict(drawn)
    assert len(set(drawn)) == len(genomes) == 400 and None not in genomes.values()
    assert list(genomes.values()).count(1) / 400 == pytest.approx(0.5, abs=0.08)
    with pytest.raises(UserError, match="blank.fa: no window with at most 5% N found in 1000 draws of 100 bp; it is "
                                        r"mostly N, or N lie throughout \(raise --max-n\)"):
        [WindowSampler([clean, blank], None, 100).draw(np.random.default_rng(i)) for i in range(50)]


def test_a_genome_mostly_n_is_refused_before_force_removes_checkpoints(genome, tmp_path):
    """It was found at step 1, the earlier run's checkpoints already removed."""
    assert run_cli(*pretrain_args(genome, tmp_path / "m", "--steps", 2, "--checkpoint-every", 2)).returncode == 0
    blank = tmp_path / "blank.fa"
    blank.write_text(">blank\n" + "N" * 6000 + "\n")
    assert_user_error(run_cli(*pretrain_args(blank, tmp_path / "m", "--steps", 2, "--force")),
                      "blank.fa: no window with at most 5% N found in 1000 draws of 384 bp; it is mostly N")
    assert (tmp_path / "m" / "checkpoints" / "step-00000002.pt").is_file()


def test_an_error_in_a_data_worker_is_one_line(tmp_path):
    genome = tmp_path / "gaps.fa"
    genome.write_text(">gaps\n" + "ACGTNNNNNNNNNNNNNNNNNNNN" * 200 + "\n")  # never 5% N or less
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--window-bp", 100, "--workers", 1,
                                             "--steps", 2)), "no window with at most 5% N")
    assert not list((tmp_path / "m").glob("**/step-*"))


def test_resume_with_force_continues_the_same_settings_and_starts_afresh_over_others(genome, tmp_path):
    # As the workflow runs it: a rerun after a failure resumes, one after a settings change starts afresh.
    out = tmp_path / "m"
    assert run_cli(*pretrain_args(genome, out, "--steps", 2, "--checkpoint-every", 1)).returncode == 0
    same = run_cli(*pretrain_args(genome, out, "--steps", 2, "--checkpoint-every", 1, "--resume", "--force"))
    assert same.returncode == 0 and "afresh" not in same.stderr, same.stderr
    other = run_cli(*pretrain_args(genome, out, "--steps", 3, "--checkpoint-every", 1, "--lr", 1e-3, "--resume",
                                   "--force"))
    assert other.returncode == 0, other.stderr
    assert "(lr: 0.002 in the checkpoint, 0.001 now; steps: 2 in the checkpoint, 3 now): --force, so starting " \
           "afresh, its checkpoints removed" in other.stderr
    assert [r["step"] for r in losses(out)] == [1, 2, 3]
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*.pt")) == ["step-00000002.pt", "step-00000003.pt"]


def test_resume_refuses_a_tokenizer_of_the_same_vocabulary_with_its_merges_reordered(genome, tmp_path):
    """A vocab learnt again may hold the same tokens with merges of another rank, which cut windows
    into other tokens: another run, though its vocabulary is the same."""
    data = json.loads(TOKENIZER.read_text())
    merges = data["model"]["merges"]
    merges[-1], merges[-2] = merges[-2], merges[-1]
    reordered = tmp_path / "tokenizer.json"
    reordered.write_text(json.dumps(data))
    assert load_tokenizer(reordered).get_vocab() == load_tokenizer(TOKENIZER).get_vocab()
    # The same merges written as pairs (as tokenizers 0.20 and later write them) are the same tokenizer.
    paired = json.loads(TOKENIZER.read_text())
    paired["model"]["merges"] = [merge.split(" ") for merge in paired["model"]["merges"]]
    (tmp_path / "paired.json").write_text(json.dumps(paired))
    assert rules_fingerprint(load_tokenizer(tmp_path / "paired.json")) == rules_fingerprint(load_tokenizer(TOKENIZER))
    out = tmp_path / "m"
    args = ["--steps", 1, "--checkpoint-every", 1]
    assert run_cli(*pretrain_args(genome, out, *args)).returncode == 0
    swapped = pretrain_args(genome, out, *args, "--resume")
    swapped[swapped.index("--tokenizer") + 1] = reordered
    assert_user_error(run_cli(*swapped), "checkpoint of another configuration", "tokenizer_rules")


def test_resume_tells_genomes_and_init_models_apart_by_their_contents(genome, tmp_path):
    """A genome of the same contigs and lengths but other bases (masked otherwise, say), or an --init
    folder whose weights were replaced, is another run: --resume refuses it, --resume --force starts
    afresh, and the finished model is the one a fresh run trains."""
    with Fasta(genome) as fasta:
        contigs = {name: fasta.fetch(name, 0, 20_000) for name in ("I", "II")}
    first, init = tmp_path / "g.fa", tmp_path / "init"
    first.write_text("".join(f">{name}\n{sequence}\n" for name, sequence in contigs.items()))
    torch.manual_seed(0)
    save_model(build_model(preset("tiny"), "mlm"), init, load_tokenizer(TOKENIZER))
    out, fresh = tmp_path / "m", tmp_path / "fresh"
    assert run_cli(*pretrain_args(first, out, "--steps", 2, "--checkpoint-every", 1, "--init", init)).returncode == 0
    # Other bases, the same names and lengths; and other initial weights, the same folder.
    first.write_text("".join(f">{name}\n{sequence[::-1]}\n" for name, sequence in contigs.items()))
    assert_user_error(run_cli(*pretrain_args(first, out, "--steps", 2, "--checkpoint-every", 1, "--init", init,
                                             "--resume")), "genome_sha256")
    torch.manual_seed(1)
    save_model(build_model(preset("tiny"), "mlm"), init, load_tokenizer(TOKENIZER))
    again = run_cli(*pretrain_args(first, out, "--steps", 2, "--checkpoint-every", 1, "--init", init, "--resume",
                                   "--force"))
    assert again.returncode == 0 and "genome_sha256" in again.stderr and "init_sha256" in again.stderr, again.stderr
    assert "afresh" in again.stderr
    assert run_cli(*pretrain_args(first, fresh, "--steps", 2, "--init", init)).returncode == 0
    assert_same_run(out, fresh)


def test_held_out_contigs_of_gaps_are_named_as_such(tmp_path):
    genome = tmp_path / "g.fa"
    genome.write_text(">clean\n" + "ACGT" * 100 + "\n>gaps\n" + "N" * 400 + "\n")
    assert WindowSampler([genome], None, 100, ["gaps"], TRAIN).draw(np.random.default_rng(0))[0] == "clean"
    with pytest.raises(UserError, match="g.fa: no window .* in 1000 draws of 100 bp; its held-out contigs are mostly N"):
        WindowSampler([genome], None, 100, ["gaps"], EVAL).draw(np.random.default_rng(0))


def test_bad_optimiser_settings(genome, tmp_path):
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--clip", -1)), "clip must be zero or more")
    # NaN passes every comparison: it trained to NaN weights with exit 0 (betas: torch's traceback).
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--clip", "nan")), "clip must be zero or more")
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--weight-decay", "inf")), "weight decay must")
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--adam-betas", "nan", 0.98)), "beta1 must be in")
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--adam-betas", 0.9, 1.5)), "beta2 must be in")
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--mask-rate", 0)), "masks no token")
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--eval-every", 2)), "--heldout-contigs")
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--window-tokens", 128, "--batch-tokens", 64)),
                      "cannot hold a window of 128 tokens")
    link = tmp_path / "same.fa.gz"
    link.symlink_to(genome)
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--genome", link)), "the same file as")
    plain = tmp_path / "same.fa"  # the genome again, another file: sampled twice as often
    plain.write_bytes(gzip.decompress(Path(genome).read_bytes()))
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--genome", plain)),
                      "same.fa: the same genome (every contig of one name and length) as", "give each genome once")
    assert_user_error(run_cli(*pretrain_args(genome, tmp_path / "m", "--checkpoint-dir", link)),
                      "a file, not a folder for checkpoints")
    assert not (tmp_path / "m").exists()


def test_a_diverged_run_stops_at_the_first_loss_that_is_not_finite(genome, tmp_path):
    """It trained on to NaN weights, and wrote them as the model, with exit 0."""
    patch = ("from dnabert2.pretrain.train import TrainingLoop\nstep = TrainingLoop.step\n"
             "def diverging(self, batches):\n    got = step(self, batches)\n"
             "    self.calls = getattr(self, 'calls', 0) + 1\n"
             "    return (float('nan'), *got[1:]) if self.calls == 3 else got\n"
             "TrainingLoop.step = diverging")
    result = run_patched(patch, *pretrain_args(genome, tmp_path / "m", "--steps", 4, "--checkpoint-every", 2))
    assert_user_error(result, "step 3: the loss is nan: training diverged", "lower --lr")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["checkpoints"]  # no model
    assert [row["step"] for row in losses(tmp_path / "m" / "checkpoints")] == [1, 2]


def test_an_init_model_with_nan_weights_is_named_at_its_first_step_not_the_learning_rate(genome, base, tmp_path):
    """NaN before any update is the weights' (a diverged run, a bad copy), whatever --lr says."""
    init = shutil.copytree(base, tmp_path / "init")
    state = load_file(init / "model.safetensors")
    state["bert.embeddings.word_embeddings.weight"][:] = float("nan")
    save_file(state, init / "model.safetensors", metadata={"format": "pt"})
    result = run_cli(*pretrain_args(genome, tmp_path / "m", "--init", init, "--steps", 2))
    assert_user_error(result, "step 1: the loss is nan before any update: the weights of --init are not finite")
    assert "--lr" not in result.stderr
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_a_resume_replaces_no_output_folder_of_other_files_and_force_starts_afresh(genome, tmp_path):
    checkpoints = tmp_path / "ck"
    assert run_cli(*pretrain_args(genome, tmp_path / "a", "--steps", 2, "--checkpoint-dir", checkpoints)).returncode == 0
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("precious")
    resumed = run_cli(*pretrain_args(genome, victim, "--steps", 2, "--checkpoint-dir", checkpoints, "--resume"))
    assert_user_error(resumed, "already holds notes.txt")
    assert (victim / "notes.txt").read_text() == "precious"
    # A finished run's own folder may be resumed into (the model is written again).
    assert run_cli(*pretrain_args(genome, tmp_path / "a", "--steps", 2, "--checkpoint-dir", checkpoints,
                                  "--resume")).returncode == 0
    # Another configuration is named field by field, the model's fields too.
    other = run_cli(*pretrain_args(genome, tmp_path / "a", "--steps", 2, "--checkpoint-dir", checkpoints, "--resume",
                                   "--dropout", 0.2))
    assert_user_error(other, "model.hidden_dropout_prob: 0.1 in the checkpoint, 0.2 now")
    fresh = run_cli(*pretrain_args(genome, tmp_path / "b", "--steps", 3, "--checkpoint-dir", checkpoints, "--force"))
    assert fresh.returncode == 0, fresh.stderr
    assert "removing 1 checkpoints of an earlier run" in fresh.stderr
    assert [r["step"] for r in losses(tmp_path / "b")] == [1, 2, 3]


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(genome, tmp_path):
    args = ("--steps", 4, "--checkpoint-every", 2, "--keep", 2)
    whole = tmp_path / "whole"
    assert run_cli(*pretrain_args(genome, whole, *args)).returncode == 0
    latest = whole / "checkpoints" / "step-00000004.pt"
    latest.write_bytes(latest.read_bytes()[:300])
    again = run_cli(*pretrain_args(genome, tmp_path / "again", *args, "--resume", "--checkpoint-dir",
                                   whole / "checkpoints"))
    assert again.returncode == 0, again.stderr
    assert "step-00000004.pt: cannot read the checkpoint" in again.stderr and "trying the one before it" in again.stderr
    assert [r["step"] for r in losses(tmp_path / "again")] == [1, 2, 3, 4]
    assert_same_run(tmp_path / "again", whole)
    # None readable: --resume says so; --resume --force (how the workflow reruns a job) starts afresh.
    for damaged in (whole / "checkpoints").iterdir():
        damaged.write_bytes(b"")
    stuck = run_cli(*pretrain_args(genome, tmp_path / "stuck", *args, "--resume", "--checkpoint-dir",
                                   whole / "checkpoints"))
    assert_user_error(stuck, "step-00000002.pt: cannot read the checkpoint", "--force starts afresh")
    afresh = run_cli(*pretrain_args(genome, tmp_path / "afresh", *args, "--resume", "--force", "--checkpoint-dir",
                                    whole / "checkpoints"))
    assert afresh.returncode == 0, afresh.stderr
    assert "--force, so starting afresh, its checkpoints removed" in afresh.stderr
    assert_same_run(tmp_path / "afresh", whole)


@pytest.mark.parametrize("content, words", [(b"junk\n", "cannot read the checkpoint"),
                                            (b"garbage\n", "cannot read the checkpoint"),
                                            (None, r"cannot read the checkpoint \(cut short"),
                                            ({"a": 1}, "not a dnabert2 pretraining checkpoint"),
                                            ("overwritten", r"cannot read the checkpoint \(its \S+ fails its checksum")])
def test_an_unreadable_checkpoint_is_named_in_one_error(tmp_path, content, words):
    """A file that is not a checkpoint (text, a checkpoint cut short, another program's torch.save)
    gets a one-line error; so does one whose bytes were overwritten in place, which torch.load took
    for other weights (it checks no checksum), and a resume went on from them with exit 0."""
    from dnabert2.pretrain.checkpoints import DamagedCheckpoint, load_checkpoint

    path = tmp_path / "step-00000099.pt"
    if content is None:
        torch.save({"step": 99, "weights": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif content == "overwritten":
        torch.save({key: torch.ones(100_000) for key in ("model", "optimizer", "scheduler", "rng", "settings")}, path)
        data = bytearray(path.read_bytes())
        data[len(data) // 2:len(data) // 2 + 4096] = bytes(4096)
        path.write_bytes(bytes(data))
    elif isinstance(content, dict):
        torch.save(content, path)
    else:
        path.write_bytes(content)
    with pytest.raises(DamagedCheckpoint, match=f"step-00000099.pt: {words}"):
        load_checkpoint(path)


def test_a_checkpoint_that_cannot_be_read_at_all_is_not_taken_for_damaged(tmp_path, monkeypatch):
    """Damaged bytes may fall back to an earlier checkpoint, or be removed by --force; a file the
    storage cannot give (an I/O error, permissions: here a folder in its place) is said, and kept."""
    from dnabert2.pretrain.checkpoints import DamagedCheckpoint, load_checkpoint

    path = tmp_path / "step-00000099.pt"
    path.mkdir()
    with pytest.raises(UserError, match="step-00000099.pt: cannot read the checkpoint") as error:
        load_checkpoint(path)
    assert not isinstance(error.value, DamagedCheckpoint)
    path.rmdir()
    path.write_bytes(b"junk\n")
    with pytest.raises(DamagedCheckpoint):
        load_checkpoint(path)
    # Cut short, torch.load's reader raises OSError at some lengths (EINVAL), which was taken for
    # unreadable: no fallback to the checkpoint before, and --force did not start afresh.
    torch.save({"step": 99, "model": {"w": torch.zeros(30000)}, "optimizer": {"m": torch.ones(20000)}}, path)
    whole = path.read_bytes()
    for length in (1000, 5085, 50_000, len(whole) - 10):
        path.write_bytes(whole[:length])
        with pytest.raises(DamagedCheckpoint):
            load_checkpoint(path)
    # Storage failing while the bytes are read (EIO, a stale NFS handle) is no damage: --force would
    # remove every checkpoint for it.
    path.write_bytes(whole)

    def failing(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(torch, "load", failing)
    with pytest.raises(UserError, match="cannot read the checkpoint \\(Input/output error\\)") as error:
        load_checkpoint(path)
    assert not isinstance(error.value, DamagedCheckpoint)


def test_tokens_per_second_leave_out_evaluations_and_checkpoints(genome, tmp_path, monkeypatch):
    """The figure is training throughput: a slow evaluation and checkpoint do not drag the next one down."""
    import time

    from dnabert2.pretrain import train

    evaluate = train.evaluate

    def slow(*args):
        time.sleep(1.5)
        return evaluate(*args)

    monkeypatch.setattr(train, "evaluate", slow)
    train.pretrain([genome], TOKENIZER, tmp_path / "m", steps=6, batch_size=8, window_tokens=64, workers=0,
                   heldout_contigs=["X"], eval_every=2, eval_windows=8, log_every=1, progress=False)
    rates = [row["tokens_per_s"] for row in losses(tmp_path / "m")]
    # Steps take milliseconds: counted in, 1.5 s would cut the rate after each evaluation a hundredfold.
    assert min(rates[2], rates[4]) > 0.2 * float(np.median(rates)), rates


def test_init_brings_its_tokenizer_when_none_is_given(genome, tmp_path):
    """--init alone: the init model's tokenizer, as the pretrain wrapper documents."""
    init = save_model(build_model(preset("tiny"), "mlm"), tmp_path / "init", load_tokenizer(TOKENIZER))
    args = ["pretrain", "--genome", genome, "--init", init, "--out", tmp_path / "m", "--batch-size", 8,
            "--window-tokens", 64, "--workers", 0, "--steps", 1, "-q"]
    assert run_cli(*args).returncode == 0
    assert load_tokenizer(tmp_path / "m").get_vocab() == load_tokenizer(TOKENIZER).get_vocab()
    result = run_cli("pretrain", "--genome", genome, "--out", tmp_path / "n")
    assert_user_error(result, "--tokenizer is needed", "--init")
    assert not (tmp_path / "n").exists()


@pytest.fixture
def unwritable(tmp_path):
    """A folder that takes no new file, even for root (as CI runs, where chmod does not bar it)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
    elif subprocess.run(["chattr", "+i", folder], capture_output=True).returncode != 0:
        pytest.skip("chattr +i does not work on this file system")
    yield folder
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", folder], check=True)
    folder.chmod(0o755)


def test_an_output_in_a_folder_that_takes_no_file_is_refused_before_training(genome, unwritable, tmp_path):
    """Found when the model was written, after the last step; the message named a temporary folder."""
    out = unwritable / "model"
    result = run_cli(*pretrain_args(genome, out, "--steps", 50, "--checkpoint-dir", tmp_path / "checkpoints"))
    assert_user_error(result, f"{out}: cannot write in {unwritable} (")
    assert "step" not in result.stderr and not (tmp_path / "checkpoints").exists()
    windows = run_cli("windows", "--genome", genome, "--window", 200, "--out", unwritable / "new" / "w.fa")
    assert_user_error(windows, f"{unwritable / 'new' / 'w.fa'}: cannot write in {unwritable} (")


def test_a_checkpoint_folder_that_takes_no_file_is_refused_before_the_genome_is_read(genome, unwritable, tmp_path):
    """Found at step 1, when the first metrics row was written, after the genome had been tokenised."""
    folder = unwritable / "checkpoints"
    result = run_cli(*pretrain_args(genome, tmp_path / "model", "--steps", 50, "--checkpoint-dir", folder))
    assert_user_error(result, f"{folder / 'metrics.jsonl'}: cannot write in {unwritable} (")
    assert list(tmp_path.iterdir()) == [unwritable]
    # An --out that is a file is said to be one, not to stand in the way of its checkpoints' folder.
    (tmp_path / "file").write_text("")
    result = run_cli(*pretrain_args(genome, tmp_path / "file", "--steps", 50))
    assert_user_error(result, f"{tmp_path / 'file'}: exists and is not a folder")


def test_an_output_named_by_a_link_is_checked_where_it_is_written(genome, tmp_path):
    """The file is renamed into the folder of the link's target, not of the link."""
    writable, locked = tmp_path / "rw", tmp_path / "ro"
    writable.mkdir()
    locked.mkdir()
    (locked / "in.fa").symlink_to(writable / "target.fa")
    (writable / "out.fa").symlink_to(locked / "far.fa")
    if os.geteuid() != 0:
        locked.chmod(0o555)
    elif subprocess.run(["chattr", "+i", locked], capture_output=True).returncode != 0:
        pytest.skip("chattr +i does not work on this file system")
    try:
        through = run_cli("windows", "--genome", genome, "--window", 200, "--out", locked / "in.fa", "-q")
        assert through.returncode == 0 and (writable / "target.fa").stat().st_size > 0, through.stderr
        refused = run_cli("windows", "--genome", genome, "--window", 200, "--out", writable / "out.fa", "-q")
        assert_user_error(refused, f"{writable / 'out.fa'}: cannot write in {locked} (")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", locked], check=True)
        locked.chmod(0o755)

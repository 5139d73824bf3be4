"""BPE vocabulary learning and the tokenizer's layout, against the released DNABERT-2 tokenizer."""

import gzip
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from conftest import GENOMES, assert_user_error, run_cli
from dnabert2 import load_tokenizer
from dnabert2.errors import UserError
from dnabert2.sequences import Fasta
from dnabert2.tokenizer import SPECIAL_TOKENS, frame
from dnabert2.vocab import learn_vocabulary

RELEASED = GENOMES.parent / "tokenizers" / "dnabert2_117m_tokenizer.json"
LAMBDA = GENOMES / "lambda_phage_bowtie2_example.fa.gz"
PHIX = GENOMES / "phiX174_NC_001422.gbk.gz"


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A 512-token vocabulary learned from two real phage genomes (one of them GenBank)."""
    out = tmp_path_factory.mktemp("vocab") / "tokenizer.json"
    report = learn_vocabulary([LAMBDA, PHIX], out, vocab_size=512, window=500, seed=7)
    return out, report


def sample_sequence() -> str:
    with Fasta(LAMBDA) as fasta:
        return fasta.fetch(next(iter(fasta.lengths)), 20_000, 20_600)


def test_learned_vocabulary_has_the_dnabert2_layout(learned):
    out, report = learned
    tokenizer = Tokenizer.from_file(str(out))
    assert tokenizer.get_vocab_size() == report["vocab_size"] == 512
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert [tokenizer.id_to_token(i) for i in range(5, 9)] == ["A", "C", "G", "T"]
    encoding = tokenizer.encode(sample_sequence())
    assert encoding.ids[0] == 1 and encoding.ids[-1] == 2
    assert "".join(encoding.tokens[1:-1]) == sample_sequence()
    assert 3 not in encoding.ids and 0 not in encoding.ids
    assert report["heldout_bp_per_token"] > 2


def test_learned_tokenizer_loads_in_transformers(learned):
    out, _ = learned
    fast = PreTrainedTokenizerFast(tokenizer_file=str(out))
    sequence = sample_sequence()
    assert fast(sequence)["input_ids"] == Tokenizer.from_file(str(out)).encode(sequence).ids


def test_saved_tokenizers_write_merges_as_the_released_one_does(learned, base):
    # tokenizers before 0.20 (transformers 4.29, the original DNABERT-2's) read only "A T" strings
    released = json.loads(RELEASED.read_text())["model"]["merges"]
    assert json.loads((base / "tokenizer.json").read_text())["model"]["merges"] == released
    merges = json.loads(learned[0].read_text())["model"]["merges"]
    assert len(merges) == 512 - 9 and all(isinstance(m, str) and len(m.split(" ")) == 2 for m in merges)


def test_released_tokenizer_loads_and_encodes_exactly_as_tokenizers():
    ours = load_tokenizer(RELEASED)
    reference = Tokenizer.from_file(str(RELEASED))
    sequences = [sample_sequence(), "ACGTNACGT", "TATAAAAGGCGCGC" * 10]
    assert [e.ids for e in ours.encode_batch(sequences)] == [e.ids for e in reference.encode_batch(sequences)]
    assert ours.get_vocab_size() == 4096
    # N, as any letter but A, C, G and T, is one unknown token per base (README says so).
    assert ours.encode("ACGTNNACGT").tokens.count("[UNK]") == 2


def test_framing_cuts_a_long_sequence_at_its_end_and_refuses_a_frame_with_no_room():
    assert frame([[5, 6, 7, 8]], 4) == [[1, 5, 6, 2]] and frame([[5]], 3) == [[1, 5, 2]]
    with pytest.raises(UserError, match="max_tokens must be 3 or more"):
        frame([[5, 6, 7, 8]], 1)


def test_load_tokenizer_from_a_model_folder(tmp_path):
    (tmp_path / "tokenizer.json").write_text(RELEASED.read_text())
    assert load_tokenizer(tmp_path).get_vocab_size() == 4096


def test_tokenizer_without_dnabert2_special_tokens_is_refused(tmp_path):
    data = json.loads(RELEASED.read_text())
    data["added_tokens"][0]["content"] = "<unk>"
    data["model"]["vocab"]["<unk>"] = data["model"]["vocab"].pop("[UNK]")
    data["model"]["unk_token"] = "<unk>"
    bad = tmp_path / "tokenizer.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(UserError, match="special tokens"):
        load_tokenizer(bad)
    (tmp_path / "garbage.json").write_text("{not json")
    with pytest.raises(UserError, match="not a Hugging Face tokenizer"):
        load_tokenizer(tmp_path / "garbage.json")
    # DNABERT-2's special tokens over lower-case DNA: every upper-cased base would be [UNK], no token
    # left to mask (pretraining divided by zero).
    data = json.loads(RELEASED.read_text())
    data["model"]["vocab"] = {token if token.startswith("[") else token.lower(): i
                              for token, i in data["model"]["vocab"].items()}
    data["model"]["merges"] = [m.lower() if isinstance(m, str) else [p.lower() for p in m] for m in data["model"]["merges"]]
    (tmp_path / "lower.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="no token for each of the bases A, C, G and T"):
        load_tokenizer(tmp_path / "lower.json")


def test_same_seed_same_vocabulary_across_processes(tmp_path):
    outputs = []
    for i in range(2):
        out = tmp_path / f"tok{i}.json"
        result = run_cli("vocab", "--genome", LAMBDA, "--out", out, "--vocab-size", "300", "--window", "400", "--seed", "3")
        assert result.returncode == 0, result.stderr
        assert "bp/token" in result.stdout
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]
    other = tmp_path / "other.json"
    assert run_cli("vocab", "--genome", LAMBDA, "--out", other, "--vocab-size", "300", "--window", "400", "--seed", "4").returncode == 0
    assert json.loads(other.read_text())["model"]["merges"] != json.loads(outputs[0])["model"]["merges"]


def test_vocab_report_is_written(tmp_path):
    report = tmp_path / "report.json"
    result = run_cli("vocab", "--genome", PHIX, "--out", tmp_path / "t.json", "--vocab-size", "64",
                     "--window", "200", "--report", report)
    assert result.returncode == 0, result.stderr
    values = json.loads(report.read_text())
    assert values["vocab_size"] == 64 and values["heldout_windows"] >= 1 and values["heldout_bp_per_token"] > 1
    # Named .gz, the report is bgzip-compressed; the tokenizer is the plain JSON tokenizers reads, or refused.
    result = run_cli("vocab", "--genome", PHIX, "--out", tmp_path / "t2.json", "--vocab-size", "64",
                     "--window", "200", "--report", tmp_path / "report.json.gz")
    assert result.returncode == 0, result.stderr
    with gzip.open(tmp_path / "report.json.gz", "rt") as handle:
        compressed = json.load(handle)
    # The two runs differ only in how long training took.
    assert compressed.pop("training_seconds") >= 0 and values.pop("training_seconds") >= 0
    assert compressed == values
    result = run_cli("vocab", "--genome", PHIX, "--out", tmp_path / "t.json.gz", "--vocab-size", "64")
    assert_user_error(result, "t.json.gz: a tokenizer.json is plain JSON")
    assert not (tmp_path / "t.json.gz").exists()


def test_vocabulary_smaller_than_alphabet_plus_specials_is_refused(tmp_path):
    out = tmp_path / "t.json"
    result = run_cli("vocab", "--genome", LAMBDA, "--out", out, "--vocab-size", "8")
    assert_user_error(result, "smaller than")
    assert not out.exists()
    # tokenizers would set aside 70 GB for a billion, and abort in Rust.
    for size in ("1000000000", str(2**64)):
        result = run_cli("vocab", "--genome", LAMBDA, "--out", out, "--vocab-size", size)
        assert_user_error(result, f"vocabulary size {int(size):,} is more than 1,048,576 tokens")
    assert not out.exists()


def test_vocab_from_a_genome_shorter_than_a_window_is_refused(tmp_path):
    out = tmp_path / "t.json"
    result = run_cli("vocab", "--genome", PHIX, "--out", out, "--window", "10000")
    assert_user_error(result, "window")
    assert not out.exists()


def test_vocab_from_bad_fasta_is_refused(tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text(">x\n" + "ACGT" * 300 + "Q\n")  # the bad base lies past the last whole window
    result = run_cli("vocab", "--genome", bad, "--out", tmp_path / "t.json")
    assert_user_error(result, "non-nucleotide")
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    assert_user_error(run_cli("vocab", "--genome", empty, "--out", tmp_path / "t.json"), "empty")
    assert not (tmp_path / "t.json").exists()


def test_vocab_draws_no_window_from_held_out_contigs(tmp_path):
    """Pretraining's held-out contigs stay unseen by the vocabulary too."""
    import random

    from Bio.Seq import reverse_complement

    from dnabert2.vocab import sample_windows

    rng = random.Random(0)
    contigs = {name: "".join(rng.choice("ACGT") for _ in range(20000)) for name in ("kept", "held")}
    genome = tmp_path / "g.fa"
    genome.write_text("".join(f">{name}\n{sequence}\n" for name, sequence in contigs.items()))
    with Fasta(genome) as fasta:
        windows = sample_windows([fasta], 100, 150, seed=0, skip=["held"])
    assert len(windows) == 150
    assert all(w in contigs["kept"] or reverse_complement(w) in contigs["kept"] for w in windows)
    report = tmp_path / "report.json"
    assert run_cli("vocab", "--genome", genome, "--out", tmp_path / "t.json", "--vocab-size", 64, "--window", 100,
                   "--heldout-contigs", "held", "--report", report).returncode == 0
    assert json.loads(report.read_text())["heldout_contigs"] == ["held"]
    result = run_cli("vocab", "--genome", genome, "--out", tmp_path / "u.json", "--heldout-contigs", "chrX")
    assert_user_error(result, "--heldout-contigs", "'chrX'")
    assert not (tmp_path / "u.json").exists()
    result = run_cli("vocab", "--genome", genome, "--out", tmp_path / "u.json", "--window", 100,
                     "--heldout-contigs", "held", "kept")
    assert_user_error(result, "--heldout-contigs holds every contig")
    assert not (tmp_path / "u.json").exists()
    # A held-out share that leaves no window to learn from says so, not that the genome is too small.
    result = run_cli("vocab", "--genome", genome, "--out", tmp_path / "u.json", "--window", 100, "--sample-bp", 5000,
                     "--heldout", 0.999)
    assert_user_error(result, "found 400 window(s), 400 of them held out (--heldout 0.999)")
    assert not (tmp_path / "u.json").exists()


def test_windows_dropped_for_gaps_are_replaced_by_others(tmp_path):
    import random

    from dnabert2.vocab import sample_windows

    rng = random.Random(0)
    clean = "".join(rng.choice("ACGT") for _ in range(3000))
    genome = tmp_path / "g.fa"
    genome.write_text(f">gaps\n{'N' * 3000}\n>clean\n{clean}\n")  # half the 100 bp windows are a gap's
    with Fasta(genome) as fasta:
        assert len(sample_windows([fasta], 100, 20, seed=0)) == 20
        assert len(sample_windows([fasta], 100, 50, seed=0)) == 30  # all the clean ones there are


def test_vocab_whose_report_cannot_be_written_leaves_no_vocabulary(tmp_path):
    if not Path("/proc/self").exists():
        pytest.skip("needs /proc: a folder that exists but takes no new file, even for root")
    out = tmp_path / "t.json"
    result = run_cli("vocab", "--genome", PHIX, "--out", out, "--vocab-size", "64", "--window", "200",
                     "--report", "/proc/dnabert2-report.json")
    assert_user_error(result, "/proc/dnabert2-report.json: cannot write in /proc (")  # refused before the work
    assert not out.exists()


def test_vocab_says_how_much_lies_on_contigs_shorter_than_a_window(tmp_path):
    import random

    rng = random.Random(0)
    genome = tmp_path / "fragmented.fa"
    lengths = [900] * 20 + [5000]  # most bases on contigs shorter than a 1000 bp window
    genome.write_text("".join(f">c{i}\n{''.join(rng.choice('ACGT') for _ in range(n))}\n" for i, n in enumerate(lengths)))
    result = run_cli("vocab", "--genome", genome, "--out", tmp_path / "t.json", "--vocab-size", "20", "--window", "1000")
    assert result.returncode == 0, result.stderr
    assert "78% of the genome bases lie on contigs shorter than one window (1000 bp)" in result.stderr

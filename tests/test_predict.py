"""`predict` and `embed` on real C. elegans sequence given as CSV, FASTA or BED regions: the numbers
the Python API gives, in input order, whatever the batching; long sequences whole or in chunks;
.npz and Parquet outputs; and bad input refused before any output is written."""

import csv
import gzip
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from Bio.Seq import reverse_complement
from safetensors.torch import load_file, save_file

from conftest import GENOMES, assert_user_error, run_cli, run_patched, scan_classifier
import dnabert2.embed
from dnabert2 import load_model, load_tokenizer
from dnabert2.embed import embed
from dnabert2.errors import UserError
from dnabert2.model import build_model, preset, save_model
from dnabert2.predict import predict
from dnabert2.sequences import Fasta

WINDOW = 300


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return scan_classifier(tmp_path_factory.mktemp("classifier") / "splice", window=WINDOW)


@pytest.fixture(scope="module")
def regions():
    """Twelve stretches of chromosome II of every length from 40 to 1,500 bp, half on the minus strand."""
    lengths = [40, 1500, 300, 77, 900, 300, 123, 650, 300, 1100, 64, 300]
    with Fasta(GENOMES / "ce1pct.fa.gz") as genome:
        out = []
        for i, length in enumerate(lengths):
            start = 5000 + 2000 * i
            sequence = genome.fetch("II", start, start + length)
            strand = "-" if i % 2 else "+"
            out.append((f"r{i}", "II", start, start + length, strand,
                        reverse_complement(sequence) if strand == "-" else sequence))
    return out


def write_inputs(folder, regions):
    with open(folder / "in.csv", "w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(["sequence", "label", "id"])
        table.writerows([(sequence, 0, name) for name, *_, sequence in regions])
    (folder / "in.fa").write_text("".join(f">{name}\n{sequence}\n" for name, *_, sequence in regions))
    (folder / "in.bed").write_text("".join(f"{c}\t{s}\t{e}\t{name}\t0\t{strand}\n"
                                           for name, c, s, e, strand, _ in regions))
    (folder / "in.bed.gz").write_bytes(gzip.compress((folder / "in.bed").read_bytes()))
    return {"csv": ["--csv", folder / "in.csv"], "fasta": ["--fasta", folder / "in.fa"],
            "bed": ["--bed", folder / "in.bed", "--genome", GENOMES / "ce1pct.fa.gz"],
            "bed.gz": ["--bed", folder / "in.bed.gz", "--genome", GENOMES / "ce1pct.fa.gz"]}


def read_tsv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def alone(model, tokenizer, sequence, **options):
    """The Python API on one sequence, no batch around it."""
    ids = torch.tensor([tokenizer.encode(sequence).ids])
    with torch.no_grad():
        return model(ids, **options)


def test_predict_gives_the_python_apis_probabilities_in_input_order(classifier, regions, tmp_path):
    model, tokenizer = load_model(classifier), load_tokenizer(classifier)
    sources = write_inputs(tmp_path, regions)
    expected = [alone(model, tokenizer, sequence).logits.softmax(-1)[0].numpy() for *_, sequence in regions]
    outputs = {}
    for source, options in sources.items():
        out = tmp_path / f"{source}.tsv"
        result = run_cli("predict", "--model", classifier, *options, "--out", out, "--batch-tokens", 300, "-q")
        assert result.returncode == 0, result.stderr
        rows = read_tsv(out)
        assert list(rows[0]) == ["id", "p_neither", "p_donor", "p_acceptor", "label"]
        assert [row["id"] for row in rows] == [name for name, *_ in regions]
        for row, want in zip(rows, expected):
            got = np.array([float(row[f"p_{label}"]) for label in ("neither", "donor", "acceptor")])
            np.testing.assert_allclose(got, want, atol=1e-4)  # fp32 rounding: packed, not padded
            assert row["label"] == ["neither", "donor", "acceptor"][int(want.argmax())]
        outputs[source] = out.read_text()
    assert outputs["csv"] == outputs["fasta"] == outputs["bed"]  # '-' regions read reverse-complemented
    streamed = run_cli("predict", "--model", classifier, *sources["csv"], "--out", "-", "--batch-tokens", 300)
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == outputs["csv"] and f"-: {len(regions)} sequences" in streamed.stderr
    command = " ".join(map(shlex.quote, [sys.executable, "-m", "dnabert2", "predict", "--model", str(classifier),
                                         *map(str, sources["csv"]), "--out", "-"]))
    closed = subprocess.run(["bash", "-c", f"{command} >&-"], capture_output=True, text=True)
    assert_user_error(closed, "standard output is closed")


def test_labels_without_names_are_numbered_however_the_model_was_saved(classifier, regions, tmp_path):
    """A classifier without task.json names its labels by number: alike whether its config.json holds
    Hugging Face's placeholder names (LABEL_0 ..., as a merged model's does) or none (as a LoRA adapter's)."""
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(classifier, bare)
    (bare / "task.json").unlink()
    assert '"LABEL_0"' in (bare / "config.json").read_text()
    (tmp_path / "in.fa").write_text(f">r0\n{regions[0][-1]}\n")
    result = run_cli("predict", "--model", bare, "--fasta", tmp_path / "in.fa", "--out", tmp_path / "p.tsv", "-q")
    assert result.returncode == 0, result.stderr
    rows = read_tsv(tmp_path / "p.tsv")
    assert list(rows[0]) == ["id", "p_0", "p_1", "p_2", "label"] and rows[0]["label"] in {"0", "1", "2"}


def test_a_classifier_whose_config_names_no_architecture_is_told_by_its_weights(classifier, regions, tmp_path):
    """config.json without "architectures" (written by hand, or by other code): the weights hold the
    classifier head, so predict scores it as load_model loads it, rather than refusing a model "without
    a classification head"; a config.json that is no JSON is named as such."""
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(classifier, bare)
    config = json.loads((bare / "config.json").read_text())
    del config["architectures"]
    (bare / "config.json").write_text(json.dumps(config))
    (bare / "finetune.json").unlink()  # saved by other code: nothing but the weights says what it is
    (tmp_path / "in.fa").write_text(f">r0\n{regions[0][-1]}\n")
    for model in (classifier, bare):
        result = run_cli("predict", "--model", model, "--fasta", tmp_path / "in.fa", "--out", tmp_path / "p.tsv", "-q")
        assert result.returncode == 0, result.stderr
        rows = read_tsv(tmp_path / "p.tsv")
        if model == classifier:
            want = rows
    assert rows == want
    (bare / "config.json").write_text("{not json")
    result = run_cli("predict", "--model", bare, "--fasta", tmp_path / "in.fa", "--out", tmp_path / "q.tsv", "-q")
    assert_user_error(result, "config.json: not readable as JSON")


def test_predict_reads_every_base_behind_a_run_of_n(classifier, regions, tmp_path):
    """Each N is a token of its own: sequences behind an assembly gap are read to their end, so two of
    them differ as the Python API says, rather than being cut at fine-tuning's token limit alike."""
    model, tokenizer = load_model(classifier), load_tokenizer(classifier)
    sequences = ["N" * 200 + regions[i][-1] for i in (2, 5)]
    (tmp_path / "gap.fa").write_text("".join(f">g{i}\n{q}\n" for i, q in enumerate(sequences)))
    result = run_cli("predict", "--model", classifier, "--fasta", tmp_path / "gap.fa", "--out", tmp_path / "gap.tsv", "-q")
    assert result.returncode == 0, result.stderr
    rows = read_tsv(tmp_path / "gap.tsv")
    for row, sequence in zip(rows, sequences):
        want = alone(model, tokenizer, sequence).logits.softmax(-1)[0].numpy()
        np.testing.assert_allclose([float(row[f"p_{label}"]) for label in ("neither", "donor", "acceptor")], want,
                                   atol=1e-4)
    assert rows[0]["p_donor"] != rows[1]["p_donor"]


def test_a_spreadsheets_csv_rna_and_a_gz_output_name(classifier, regions, tmp_path):
    """A CSV saved by a spreadsheet (a byte-order mark before the header) keeps its ids; RNA is read
    as its DNA; an output named .gz is compressed (bgzip, which any gzip reader takes)."""
    sequence = regions[2][-1]
    (tmp_path / "dna.csv").write_text(f"id,sequence,,\nr2,{sequence},,\n")  # and its empty columns
    (tmp_path / "rna.csv").write_text(f"\ufeffid,sequence\nr2,{sequence.replace('T', 'U').lower()}\n", encoding="utf-8")
    for name, out in (("dna", tmp_path / "dna.tsv"), ("rna", tmp_path / "rna.tsv.gz")):
        result = run_cli("predict", "--model", classifier, "--csv", tmp_path / f"{name}.csv", "--out", out, "-q")
        assert result.returncode == 0, result.stderr
    with gzip.open(tmp_path / "rna.tsv.gz", "rt") as handle:
        assert handle.read() == (tmp_path / "dna.tsv").read_text() and "r2\t" in (tmp_path / "dna.tsv").read_text()
    # A file cut off before its last row's last column (a copy broken off), or a row with a field too many:
    # refused, not the fragment scored. A trailing comma (a spreadsheet's empty column) is no field.
    (tmp_path / "cut.csv").write_text(f"id,sequence\nr2,{sequence}\n{sequence[:40]}")
    (tmp_path / "long.csv").write_text(f"id,sequence\nr2,{sequence},\nr3,{sequence},x\n")
    # An empty sequence, by its line as the errors beside it (it said "row 2 (2)" of an unnamed third line).
    (tmp_path / "empty.csv").write_text(f"sequence\n{sequence}\n\"\"\n")
    (tmp_path / "named.csv").write_text(f"id,sequence\nr2,{sequence}\nr3,\n")
    for name, words in (("cut", "line 3 has fewer fields than the header (a file cut short?)"),
                        ("long", "line 3 has more fields than the header (a field holding a comma, unquoted?)"),
                        ("empty", "empty.csv: line 3 has an empty sequence"),
                        ("named", "named.csv: line 3 (r3) has an empty sequence")):
        result = run_cli("predict", "--model", classifier, "--csv", tmp_path / f"{name}.csv", "--out",
                         tmp_path / f"{name}.tsv")
        assert_user_error(result, words)
        assert not (tmp_path / f"{name}.tsv").exists()


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_embed_gives_each_sequence_the_vector_it_has_alone(base, regions, tmp_path, pooling):
    model, tokenizer = load_model(base, head="embedding", pooling=pooling), load_tokenizer(base)
    sources = write_inputs(tmp_path, regions)
    out = tmp_path / ("vectors.NPZ" if pooling == "max" else "vectors.npz")  # the suffix in any case
    # Small batches: the sequences are packed into several different batch compositions.
    result = run_cli("embed", "--model", base, *sources["bed"], "--out", out, "--pooling", pooling,
                     "--batch-tokens", 500, "-q")
    assert result.returncode == 0, result.stderr
    saved = np.load(out)
    assert list(saved["ids"]) == [name for name, *_ in regions]
    assert saved["embeddings"].shape == (len(regions), model.config.hidden_size)
    for vector, (*_, sequence) in zip(saved["embeddings"], regions):
        np.testing.assert_allclose(vector, alone(model, tokenizer, sequence).embeddings[0].numpy(), atol=1e-5)

    parquet = tmp_path / "vectors.parquet"
    result = run_cli("embed", "--model", base, *sources["csv"], "--out", parquet, "--pooling", pooling, "-q")
    assert result.returncode == 0, result.stderr
    table = pq.read_table(parquet).to_pydict()
    assert table["id"] == list(saved["ids"])
    np.testing.assert_allclose(np.array(table["embedding"]), saved["embeddings"], atol=1e-5)

    # An .npy holds the vectors alone (np.load memory-maps it); the ids lie beside it, a line each.
    npy = tmp_path / "vectors.npy"
    result = run_cli("embed", "--model", base, *sources["fasta"], "--out", npy, "--pooling", pooling, "-q")
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(npy, mmap_mode="r"), saved["embeddings"], atol=1e-5)
    assert (tmp_path / "vectors.npy.ids.txt").read_text().splitlines() == list(saved["ids"])


def test_an_embedding_model_pools_as_it_was_saved_to(base, regions, tmp_path):
    """A folder saved from load_model(head="embedding", pooling="cls") says so in its config.json: embed
    pools as the Python API does with it (it took the mean), unless --pooling says otherwise."""
    model = load_model(base, head="embedding", pooling="cls")
    folder = save_model(model, tmp_path / "cls-embedder", load_tokenizer(base))
    sources = write_inputs(tmp_path, regions)
    for options, pooling in (((), "cls"), (("--pooling", "max"), "max")):
        out = tmp_path / f"{pooling}.npz"
        result = run_cli("embed", "--model", folder, *sources["fasta"], "--out", out, *options, "-q")
        assert result.returncode == 0, result.stderr
        want = load_model(folder, head="embedding", pooling=pooling)
        for vector, (*_, sequence) in zip(np.load(out)["embeddings"], regions[:3]):
            np.testing.assert_allclose(vector, alone(want, load_tokenizer(base), sequence).embeddings[0].numpy(),
                                       atol=1e-5)


def test_embed_streams_an_npy_into_place(base, regions, tmp_path, monkeypatch):
    """An .npy is written where it goes, block by block: nothing staged in $TMPDIR (which need not hold
    the whole set), the header counting every block's rows."""
    sources = write_inputs(tmp_path, regions)
    embed(base, tmp_path / "all.npz", csv_file=sources["csv"][1])
    monkeypatch.setattr(dnabert2.embed, "BLOCK_BASES", 2000)  # several blocks
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: pytest.fail("staged in a temporary folder"))
    assert embed(base, tmp_path / "all.npy", csv_file=sources["csv"][1]) == len(regions)
    vectors = np.load(tmp_path / "all.npy", mmap_mode="r")
    np.testing.assert_allclose(vectors, np.load(tmp_path / "all.npz")["embeddings"], atol=1e-5)
    assert (tmp_path / "all.npy.ids.txt").read_text().splitlines() == [name for name, *_ in regions]


def test_library_calls_check_their_keywords_as_the_commands_check_options(base, regions, tmp_path):
    sources = write_inputs(tmp_path, regions)
    csv_file = sources["csv"][1]
    for call, keywords, words in ((embed, {"pooling": "CLS"}, "pooling must be one of mean, cls, max, tokens, not 'CLS'"),
                                  (embed, {"batch_tokens": -1}, "batch_tokens must be a positive integer, not -1"),
                                  (predict, {"batch_tokens": 0}, "batch_tokens must be a positive integer, not 0"),
                                  (predict, {"batch_tokens": 1.5}, "batch_tokens: 1.5 is not a valid positive value")):
        out = tmp_path / f"{call.__name__}.out"
        with pytest.raises(UserError, match=re.escape(words)):
            call(base, out, csv_file=csv_file, **keywords)
        assert not out.exists()
    for given in ("300", 300.0):  # text, as on the command line, and a whole float
        embed(base, tmp_path / f"{given}.npz", csv_file=csv_file, batch_tokens=given)
        assert len(np.load(tmp_path / f"{given}.npz")["ids"]) == len(regions)


def test_embed_per_token_and_in_chunks(base, regions, tmp_path):
    model, tokenizer = load_model(base, head="encoder"), load_tokenizer(base)
    sources = write_inputs(tmp_path, regions)
    out = tmp_path / "tokens.npz"
    result = run_cli("embed", "--model", base, *sources["fasta"], "--out", out, "--pooling", "tokens", "-q")
    assert result.returncode == 0, result.stderr
    saved = np.load(out)
    offsets = saved["offsets"]
    assert len(offsets) == len(regions) + 1 and offsets[-1] == len(saved["embeddings"]) == len(saved["tokens"])
    for i, (*_, sequence) in enumerate(regions):
        encoding = tokenizer.encode(sequence)
        rows = slice(offsets[i], offsets[i + 1])
        assert list(saved["tokens"][rows]) == encoding.tokens  # [CLS] … [SEP]
        np.testing.assert_allclose(saved["embeddings"][rows], alone(model, tokenizer, sequence).last_hidden_state[0],
                                   atol=1e-5)

    # Chunks of 24 tokens, none shared: each token's state is the one it has in its own chunk alone.
    chunked = tmp_path / "chunked.npz"
    result = run_cli("embed", "--model", base, *sources["fasta"], "--out", chunked, "--pooling", "tokens",
                     "--chunk-tokens", 24, "--overlap", 0, "-q")
    assert result.returncode == 0, result.stderr
    states = np.load(chunked)["embeddings"]
    *_, sequence = regions[1]  # 1,500 bp: a few hundred tokens
    content = tokenizer.encode(sequence, add_special_tokens=False).ids
    first = 22 * 3  # the fourth chunk (22 content tokens each)
    piece = torch.tensor([[1, *content[first:first + 22], 2]])
    with torch.no_grad():
        own = model(piece).last_hidden_state[0, 1:-1].numpy()
    np.testing.assert_allclose(states[offsets[1] + 1 + first: offsets[1] + 1 + first + 22], own, atol=1e-5)
    assert not np.allclose(own, saved["embeddings"][offsets[1] + 1 + first: offsets[1] + 1 + first + 22], atol=1e-3)


@pytest.mark.parametrize("command, make, words", [
    ("predict", lambda d: [], ["give the sequences one way"]),
    ("predict", lambda d: ["--csv", d / "in.csv", "--fasta", d / "in.fa"], ["give the sequences one way"]),
    ("predict", lambda d: ["--bed", d / "in.bed"], ["--genome"]),
    ("predict", lambda d: ["--csv", d / "bad.csv"], ["no 'sequence' column"]),
    ("predict", lambda d: ["--csv", d / "header.csv"], ["no sequences"]),
    # pandas (finetune) reads the first of two columns of one name, csv (predict) the last.
    ("predict", lambda d: ["--csv", d / "twice.csv"], ["twice.csv: the header names column 'sequence' twice"]),
    ("predict", lambda d: ["--csv", d / "letters.csv"], ["non-nucleotide character"]),
    ("embed", lambda d: ["--csv", d / "in.csv", "--out", d / "out.h5"], [".npz, .npy or .parquet"]),
    ("embed", lambda d: ["--csv", d / "in.csv", "--out", d / "out.npy", "--pooling", "tokens"],
     ["per-token embeddings need .npz or .parquet"]),
    ("embed", lambda d: ["--csv", d / "in.csv", "--chunk-tokens", 10, "--overlap", 8], ["--overlap 8"]),
    ("embed", lambda d: ["--csv", d / "in.csv", "--overlap", 8], ["--overlap", "--chunk-tokens"]),
    ("embed", lambda d: ["--csv", d / "in.csv", "--chunk-tokens", 2], ["--chunk-tokens 2"]),
    ("predict", lambda d: ["--bed", d / "outside.bed", "--genome", GENOMES / "ce1pct.fa.gz"],
     ["outside.bed: ", "II:999999999-1000000100", "outside the contig"]),
    ("embed", lambda d: ["--csv", d / "in.csv", "--genome", GENOMES / "ce1pct.fa.gz"], ["--genome is read only for --bed"]),
    ("embed", lambda d: ["--csv", d / "nothing.csv"], ["nothing.csv: empty file"]),
    ("predict", lambda d: ["--bed", d / "empty.bed", "--genome", GENOMES / "ce1pct.fa.gz"], ["II:5-5 is empty"]),
    ("predict", lambda d: ["--bed", d / "binary.bed", "--genome", GENOMES / "ce1pct.fa.gz"], ["binary.bed", "not a BED"]),
    ("predict", lambda d: ["--csv", d / "latin1.csv"], ["latin1.csv", "not a CSV", "UTF-8"]),
    ("embed", lambda d: ["--csv", d / "newline.csv", "--out", d / "out.npy"], ["'a\\nb' holds a line break", ".npz"]),
    ("predict", lambda d: ["--csv", d / "tab.csv"], ["'a\\tb' holds a tab or a line break", "tab-separated"]),
    # A table named as another format would be read as one.
    ("predict", lambda d: ["--csv", d / "in.csv", "--out", d / "out.csv"], ["out.csv: predict writes a tab-separated"]),
])
def test_bad_input_gets_one_line_and_no_output(classifier, regions, tmp_path, command, make, words):
    write_inputs(tmp_path, regions)
    (tmp_path / "bad.csv").write_text("seq,label\nACGT,0\n")
    (tmp_path / "header.csv").write_text("sequence,label\n")
    (tmp_path / "twice.csv").write_text("sequence,label,sequence\nACGTACGT,0,ACGT\n")
    (tmp_path / "nothing.csv").write_text("")
    (tmp_path / "letters.csv").write_text("sequence,label\nACGTQQ,0\n")
    (tmp_path / "outside.bed").write_text("II\t0\t100\nII\t999999999\t1000000100\n")
    (tmp_path / "empty.bed").write_text("II\t0\t100\nII\t5\t5\n")
    (tmp_path / "binary.bed").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "latin1.csv").write_bytes("id,sequence\nsé,ACGT\n".encode("latin-1"))
    (tmp_path / "newline.csv").write_text('id,sequence\n"a\nb",ACGTACGT\n')
    (tmp_path / "tab.csv").write_text('id,sequence\n"a\tb",ACGTACGT\n')
    options = make(tmp_path)
    out = [] if "--out" in options else ["--out", tmp_path / ("out.tsv" if command == "predict" else "out.npz")]
    result = run_cli(command, "--model", classifier, *options, *out)
    assert_user_error(result, *words)
    assert not list(tmp_path.glob("out.*")) and not list(tmp_path.glob(".out*"))


def test_ids_are_written_as_they_are_and_a_blank_one_is_its_row_number(classifier, regions, tmp_path):
    """A plain TSV, as cut and bedtools read it: CSV quoting would have changed the id my "gene"."""
    sequence = regions[2][-1]
    (tmp_path / "in.csv").write_text(f'id,sequence,name\n"my ""gene""",{sequence},\n,{sequence},\n,{sequence},n3\n'
                                     f'"  ",{sequence},n4\n')
    result = run_cli("predict", "--model", classifier, "--csv", tmp_path / "in.csv", "--out", tmp_path / "p.tsv", "-q")
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[0] for line in (tmp_path / "p.tsv").read_text().splitlines()] == \
        ["id", 'my "gene"', "2", "n3", "n4"]  # a blank id (spaces too): the name, else the row number
    # Ids may repeat in a FASTA as in a CSV (`bedtools getfasta -name` writes a gene's exons so).
    (tmp_path / "in.fa").write_text(f">g exon1\n{sequence}\n>g\n{sequence[:50]}\n")
    for command in ("predict", "embed"):
        out = tmp_path / ("p2.tsv" if command == "predict" else "e.npz")
        result = run_cli(command, "--model", classifier, "--fasta", tmp_path / "in.fa", "--out", out, "-q")
        assert result.returncode == 0, result.stderr
    assert [line.split("\t")[0] for line in (tmp_path / "p2.tsv").read_text().splitlines()] == ["id", "g", "g"]
    assert list(np.load(tmp_path / "e.npz")["ids"]) == ["g", "g"]


def test_sequences_too_long_for_the_cpu_path_are_told_how_to_cut_them(base, classifier, regions, tmp_path):
    write_inputs(tmp_path, regions)
    small = "import dnabert2.attention\ndnabert2.attention.device_memory = lambda device: 1\n"  # a machine of 1 byte
    embed = run_patched(small, "embed", "--model", base, "--csv", tmp_path / "in.csv", "--out", tmp_path / "e.npz")
    assert_user_error(embed, "too long for the PyTorch attention path", "give --chunk-tokens")
    predict = run_patched(small, "predict", "--model", classifier, "--csv", tmp_path / "in.csv", "--out",
                          tmp_path / "p.tsv")
    assert_user_error(predict, "too long for the PyTorch attention path", "`dnabert2 scan` reads")
    assert not list(tmp_path.glob("e.*")) and not list(tmp_path.glob("p.*"))


def test_short_sequences_beside_a_long_one_are_not_padded_to_it(base, classifier, tmp_path):
    """A 6.6 kb sequence among 2,000 of 12 bp: batched in input order, the short ones were padded to
    the long one's 1,300 tokens, a 34 GiB attention bias that was refused, though the long one alone
    runs. Each sequence keeps the scores it has alone."""
    with Fasta(GENOMES / "ce1pct.fa.gz") as genome:
        long = genome.fetch("II", 10000, 16600)
        short = [genome.fetch("II", 20000 + 40 * i, 20012 + 40 * i) for i in range(2000)]
    names = ["long", *(f"s{i}" for i in range(2000))]
    (tmp_path / "all.fa").write_text("".join(f">{n}\n{q}\n" for n, q in zip(names, [long, *short])))
    (tmp_path / "few.fa").write_text(f">long\n{long}\n>s7\n{short[7]}\n")
    for name in ("all", "few"):
        result = run_cli("predict", "--model", classifier, "--fasta", tmp_path / f"{name}.fa", "--out",
                         tmp_path / f"{name}.tsv")
        assert result.returncode == 0, result.stderr
        result = run_cli("embed", "--model", base, "--fasta", tmp_path / f"{name}.fa", "--out", tmp_path / f"{name}.npz")
        assert result.returncode == 0, result.stderr
    every, few = read_tsv(tmp_path / "all.tsv"), read_tsv(tmp_path / "few.tsv")
    assert [row["id"] for row in every] == names
    for row, other in zip(few, (every[0], every[8])):
        assert row["id"] == other["id"]
        assert np.allclose([float(v) for k, v in row.items() if k.startswith("p_")],
                           [float(v) for k, v in other.items() if k.startswith("p_")], atol=1e-5)
    every, few = np.load(tmp_path / "all.npz"), np.load(tmp_path / "few.npz")
    assert np.allclose(few["embeddings"], every["embeddings"][[0, 8]], atol=1e-5)


def test_a_fine_tuned_folder_whose_weights_lost_the_head_is_refused_not_scored_at_random(classifier, regions, tmp_path):
    """Loading for training gives a missing head fresh weights; every command that scores refuses it."""
    write_inputs(tmp_path, regions)
    dense = tmp_path / "dense"
    save_model(build_model(preset("tiny", num_labels=3), "dense"), dense, load_tokenizer(classifier))
    (dense / "task.json").write_text(json.dumps({"task": "splice", "dense": True, "core_bp": 200, "flank_bp": 50}))
    for folder, head in ((classifier, "classifier."), (dense, "base_head.")):
        headless = tmp_path / f"headless-{folder.name}"
        shutil.copytree(folder, headless)
        weights = load_file(headless / "model.safetensors")
        save_file({k: v for k, v in weights.items() if not k.startswith(head)}, headless / "model.safetensors")
        for command, options in (("predict", ["--fasta", tmp_path / "in.fa", "--out", tmp_path / "out.tsv"]),
                                 ("mutagenesis", ["--fasta", GENOMES / "ce1pct.fa.gz", "--region", "II:5001-5020",
                                                  "--out", tmp_path / "out.tsv"]),
                                 ("scan", ["--fasta", GENOMES / "ce1pct.fa.gz", "--contigs", "II", "--window", 300,
                                           "--out", tmp_path / "out.bed"])):
            result = run_cli(command, "--model", headless, *options)
            assert_user_error(result, "no trained", "head", "fine-tune it first")
            assert not list(tmp_path.glob("out.*"))
    with pytest.raises(UserError, match="no trained classification head"):
        load_model(tmp_path / "headless-splice", head="classification", trained=True)
    assert load_model(tmp_path / "headless-splice", head="classification").config.num_labels == 3  # to fine-tune


def test_the_cnn_scores_a_sequence_alike_alone_and_padded_in_a_batch(cnn, regions, tmp_path):
    """Sequences of twelve lengths in one padded batch, and each in a batch of its own: the padding
    past a shorter sequence reads as the zeros past a tensor's end, not as N bases."""
    options = write_inputs(tmp_path, regions)["fasta"]
    for name, batch in (("together", []), ("alone", ["--batch-tokens", 1])):
        result = run_cli("predict", "--model", cnn, *options, "--out", tmp_path / f"{name}.tsv", *batch, "-q")
        assert result.returncode == 0, result.stderr
    together, alone = read_tsv(tmp_path / "together.tsv"), read_tsv(tmp_path / "alone.tsv")
    assert [row["id"] for row in together] == [row["id"] for row in alone]
    for a, b in zip(together, alone):
        assert a["at_donor"] == b["at_donor"] and a["at_acceptor"] == b["at_acceptor"]
        np.testing.assert_allclose([float(a["p_donor"]), float(a["p_acceptor"])],
                                   [float(b["p_donor"]), float(b["p_acceptor"])], atol=1e-6)


def test_a_bed_region_is_read_between_the_genomes_flanks_as_a_scan_reads_it(cnn, regions, tmp_path):
    """A per-base model reads a BED region with the genome's bases either side, N only past a contig's
    end: the Python API on those bases gives the same numbers. The region's sequence alone (CSV) is
    read between N flanks, and scores otherwise."""
    task = json.loads((cnn / "task.json").read_text())
    flank, labels = task["flank_bp"], [task["labels"][str(i)] for i in range(len(task["labels"]))]
    options = write_inputs(tmp_path, regions)
    with Fasta(GENOMES / "ce1pct.fa.gz") as genome:
        length = genome.lengths["II"]
    edge = ("edge", "II", length - 30, length, "+", None)  # its right flank is past the contig's end: N
    (tmp_path / "in.bed").write_text("".join(f"{c}\t{s}\t{e}\t{name}\t0\t{strand}\n"
                                             for name, c, s, e, strand, _ in [*regions, edge]))
    for name, source in (("bed", options["bed"]), ("csv", options["csv"])):
        result = run_cli("predict", "--model", cnn, *source, "--out", tmp_path / f"{name}.tsv", "-q")
        assert result.returncode == 0, result.stderr
    bed, csv_rows = read_tsv(tmp_path / "bed.tsv"), read_tsv(tmp_path / "csv.tsv")
    model = load_model(cnn)
    with Fasta(GENOMES / "ce1pct.fa.gz") as genome:
        for row, (name, contig, start, end, strand, _) in zip(bed, [*regions, edge]):
            read = genome.fetch_padded(contig, start - flank, end + flank)
            read = reverse_complement(read) if strand == "-" else read
            bases = torch.tensor(["ACGT".find(b) if b in "ACGT" else 4 for b in read])[None]
            with torch.no_grad():
                probabilities = model(bases).logits.softmax(-1)[0, flank:len(read) - flank].numpy()
            assert row["id"] == name
            for label in ("donor", "acceptor"):
                column = probabilities[:, labels.index(label)]
                assert float(row[f"p_{label}"]) == pytest.approx(float(column.max()), abs=1e-5)
                assert int(row[f"at_{label}"]) == int(column.argmax())
    differs = [float(a["p_donor"]) != float(b["p_donor"]) for a, b in zip(bed, csv_rows)]
    assert sum(differs) >= len(regions) // 2


def test_a_sequence_with_no_base_to_score_points_at_none(cnn, regions, tmp_path):
    """An all-N sequence has no base a per-base model scores: its probabilities and offsets are empty
    (NA), not a best probability of 0 at offset 0, and the row beside it is scored as alone."""
    name, *_, sequence = regions[2]
    (tmp_path / "in.fa").write_text(f">gap\n{'N' * 120}\n>{name}\n{sequence}\n")
    (tmp_path / "alone.fa").write_text(f">{name}\n{sequence}\n")
    for stem in ("in", "alone"):
        result = run_cli("predict", "--model", cnn, "--fasta", tmp_path / f"{stem}.fa", "--out",
                         tmp_path / f"{stem}.tsv", "-q")
        assert result.returncode == 0, result.stderr
    gap, scored = read_tsv(tmp_path / "in.tsv")
    assert gap == {"id": "gap", "p_donor": "", "at_donor": "", "p_acceptor": "", "at_acceptor": "",
                   "label": "neither"}
    alone = read_tsv(tmp_path / "alone.tsv")[0]
    assert [scored[k] for k in ("id", "at_donor", "at_acceptor", "label")] == \
        [alone[k] for k in ("id", "at_donor", "at_acceptor", "label")]
    np.testing.assert_allclose([float(scored["p_donor"]), float(scored["p_acceptor"])],
                               [float(alone["p_donor"]), float(alone["p_acceptor"])], atol=1e-6)


def test_load_model_takes_the_cnn_baselines_folder(cnn, regions, tmp_path):
    model = load_model(cnn)
    assert type(model).__name__ == "SpliceCNN" and not model.training
    sequence = regions[0][-1]
    bases = torch.tensor(["ACGT".find(b) if b in "ACGT" else 4 for b in sequence])[None]
    with torch.no_grad():
        assert model(bases).logits.shape == (1, len(sequence), 3)
    with pytest.raises(UserError, match="the CNN baseline, a per-base model of its own, takes no head but 'dense'"):
        load_model(cnn, head="classification")


def test_embed_refuses_the_cnn_which_has_no_encoder_to_embed_with(cnn, regions, tmp_path):
    write_inputs(tmp_path, regions)
    result = run_cli("embed", "--model", cnn, "--csv", tmp_path / "in.csv", "--out", tmp_path / "out.npz")
    assert_user_error(result, "SpliceCNN", "not a DNABERT-2")
    assert not list(tmp_path.glob("out.*"))

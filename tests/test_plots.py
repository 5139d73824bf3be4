"""The report's figures: `dnabert2 plot` draws SVGs from the files the workflow writes."""

import json

from conftest import assert_user_error, run_cli


def test_pretraining_loss_curve(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": 8 - s / 100} for s in range(1, 301)]
    rows[99]["eval_loss"] = 7.1
    rows[199]["eval_loss"] = 6.2
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_cli("plot", "pretraining", metrics, "--out", tmp_path / "loss.svg")
    assert result.returncode == 0, result.stderr
    svg = (tmp_path / "loss.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "held-out loss" in svg
    # A rerun writes the same bytes (no date, no random element ids), so it changes no report file.
    assert run_cli("plot", "pretraining", metrics, "--out", tmp_path / "again.svg").returncode == 0
    assert (tmp_path / "again.svg").read_text() == svg

    assert_user_error(run_cli("plot", "pretraining", metrics, "--out", tmp_path / "loss.png"), "loss.png", ".svg")
    assert not (tmp_path / "loss.png").exists()
    assert run_cli("plot", "pretraining", metrics, "--out", tmp_path / "LOSS.SVG").returncode == 0

    # The file of a run in progress (or killed mid-line) ends in an unfinished line: plotted without it.
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 8}\n{"step": 2, "loss": 7.9}\n{"step": 3, "lo')
    result = run_cli("plot", "pretraining", run, "--out", tmp_path / "live.svg")
    assert result.returncode == 0, result.stderr
    assert "line 3 is unfinished" in result.stderr and "pretraining: run" in (tmp_path / "live.svg").read_text()

    # Blank lines (files joined with cat, an editor's) are passed over, as JSON Lines readers do.
    metrics.write_text('{"step": 1, "loss": 8}\n\n{"step": 2, "loss": 7.9}\n\n')
    assert run_cli("plot", "pretraining", metrics, "--out", tmp_path / "blank.svg").returncode == 0
    metrics.write_text('{"step": 1, "loss": 8}\n{"step": 2, "lo\n{"step": 3, "loss": 7.8}\n')
    assert_user_error(run_cli("plot", "pretraining", metrics, "--out", tmp_path / "bad.svg"), "line 2")
    assert not (tmp_path / "bad.svg").exists()


def test_a_score_on_a_bin_edge_counts_in_the_bin_it_opens(tmp_path, monkeypatch):
    """0.700, 0.820 and 0.940 open bins of 0.02 as 0.720 does (linspace's edges put them a bin low)."""
    import dnabert2.plots as plots

    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, out: drawn.update(
        {patch.get_label(): patch.get_data().values for patch in fig.axes[0].patches}))
    graph = tmp_path / "donor.plus.bedgraph"
    graph.write_text('track type=bedGraph name="donor+"\nI\t0\t10\t0.700\nI\t10\t15\t0.820\nI\t15\t17\t0.940\n'
                     "I\t17\t20\t0.720\nI\t20\t21\t0.680\n")
    plots.score_distribution(graph, tmp_path / "x.svg")
    bins = drawn["donor+ (21)"]
    assert (bins[34], bins[35], bins[36], bins[41], bins[47]) == (1, 10, 3, 5, 2) and bins.sum() == 21


def test_score_distributions_from_bedgraph_and_calls(tmp_path):
    graph = tmp_path / "scan.bedgraph"  # a scan's track folder, one file per label and strand
    graph.mkdir()
    # A per-base track joins equal neighbours into one line: the histogram counts bases, not lines.
    (graph / "donor.plus.bedgraph").write_text('track type=bedGraph name="donor+"\n\nI\t0\t10\t0.250\nI\t10\t13\t0.950\n')
    (graph / "donor.minus.bedgraph").write_text('track type=bedGraph name="donor-"\nI\t0\t10\t0.050\n')
    calls = tmp_path / "calls.bed"
    calls.write_text("I\t0\t400\tdonor\t950\t+\t3\t-1\t-1\t200\n")
    headed = tmp_path / "headed.bed"  # calls under a track line for a browser
    headed.write_text('track name="my calls" type=narrowPeak\n\n' + calls.read_text())  # a blank line too
    for source, legend, what in ((graph, "donor+ (13)", "bases"), (graph / "donor.plus.bedgraph", "donor+ (13)", "bases"),
                                 (calls, "donor (1)", "calls"), (headed, "donor (1)", "calls")):
        out = tmp_path / f"{source.stem}.svg"
        result = run_cli("plot", "scores", source, "--out", out)
        assert result.returncode == 0, result.stderr
        assert legend in out.read_text() and what in out.read_text()
    assert "donor- (10)" in (tmp_path / "scan.svg").read_text()
    # A bedGraph without a track line (as bigWigToBedGraph writes) is named by its file.
    (tmp_path / "plain.bedgraph").write_text("I\t0\t10\t0.25\n")
    assert run_cli("plot", "scores", tmp_path / "plain.bedgraph", "--out", tmp_path / "plain.svg").returncode == 0
    assert "plain (10)" in (tmp_path / "plain.svg").read_text()
    # Tracks of a scan that scored no base (a track line each, nothing under it) say so.
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "donor.plus.bedgraph").write_text('track type=bedGraph name="donor+"\n')
    assert run_cli("plot", "scores", tmp_path / "empty", "--out", tmp_path / "empty.svg").returncode == 0
    assert "no bases" in (tmp_path / "empty.svg").read_text()

    assert_user_error(run_cli("plot", "scores", tmp_path / "missing.bed", "--out", tmp_path / "x.svg"), "no such file")
    (graph / "donor.plus.bedgraph").write_text('track type=bedGraph name="donor+"\nI\t0\tten\t0.25\n')
    assert_user_error(run_cli("plot", "scores", graph, "--out", tmp_path / "x.svg"), "donor.plus.bedgraph",
                      "not a bedGraph")
    (graph / "donor.plus.bedgraph").write_text('track type=bedGraph name="donor+"\nI\t0\t10\t37\n')  # coverage
    assert_user_error(run_cli("plot", "scores", graph, "--out", tmp_path / "x.svg"), "probabilities")
    # Overlapping intervals counted their shared bases twice; out of order, one could hide an overlap.
    for rows, interval in (("I\t0\t10\t0.5\n\nI\t5\t20\t0.7\n", "I 5 20"),
                           ("I\t10\t20\t0.5\nII\t0\t5\t0.1\nI\t0\t10\t0.7\n", "I 0 10")):
        (graph / "donor.plus.bedgraph").write_text('track type=bedGraph name="donor+"\n' + rows)
        assert_user_error(run_cli("plot", "scores", graph, "--out", tmp_path / "x.svg"),
                          f"donor.plus.bedgraph: {interval} overlaps the interval before it, or is out of order")
    for rows in ("I\t0\t10.6\t0.5\n", "I\t5\t5\t0.5\n"):  # no base; none at all
        (graph / "donor.plus.bedgraph").write_text('track type=bedGraph name="donor+"\n' + rows)
        assert_user_error(run_cli("plot", "scores", graph, "--out", tmp_path / "x.svg"), "donor.plus.bedgraph: not a")
    (tmp_path / "binary.bed").write_bytes(bytes(range(256)))
    assert_user_error(run_cli("plot", "scores", tmp_path / "binary.bed", "--out", tmp_path / "x.svg"), "binary.bed")
    assert not (tmp_path / "x.svg").exists()
    (tmp_path / "bigwig").mkdir()  # a scan's --bigwig folder: no bedGraph to draw, not an empty figure
    assert_user_error(run_cli("plot", "scores", tmp_path / "bigwig", "--out", tmp_path / "x.svg"), "no .bedgraph files")
    assert not (tmp_path / "x.svg").exists()


def test_a_scan_keeps_its_row_order_and_colour_beside_another(tmp_path):
    """A report of acceptors alone beside one of both: the second was orange among acceptors and blue
    among donors, and a table listed one scan's labels acceptor first and the other's donor first."""
    def report(labels):
        return {"labels": {label: {"calls": 1} for label in labels},
                "metaplot": {"offsets": [-1, 1], **{label: [0.1, 0.5, 0.1] for label in labels}}}

    (tmp_path / "a.json").write_text(json.dumps(report(["acceptor"])))
    (tmp_path / "b.json").write_text(json.dumps(report(["donor", "acceptor"])))
    (tmp_path / "c.json").write_text(json.dumps(report(["acceptor", "donor"])))
    result = run_cli("plot", "metaplot", f"a={tmp_path / 'a.json'}", f"b={tmp_path / 'b.json'}",
                     "--out", tmp_path / "m.svg")
    assert result.returncode == 0, result.stderr
    svg = (tmp_path / "m.svg").read_text()
    # Lines and legend keys: a's once each (acceptors), b's twice each (acceptors, donors).
    assert (svg.count("stroke: #1f77b4"), svg.count("stroke: #ff7f0e")) == (2, 4)
    result = run_cli("scan-table", f"b={tmp_path / 'b.json'}", f"c={tmp_path / 'c.json'}", "--out", tmp_path / "t.tsv")
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t")[:2] for line in (tmp_path / "t.tsv").read_text().splitlines()[1:]]
    assert rows == [["b", "acceptor"], ["b", "donor"], ["c", "acceptor"], ["c", "donor"]]
    # A name is a table's first field: a tab in it made a row of one field more than the header.
    assert_user_error(run_cli("scan-table", f"b\tc={tmp_path / 'b.json'}"), "'b\\tc'", "unprintable")

rule plot_pretraining:
    input:
        rules.pretrain.output.folder,
    output:
        report(
            "results/report/pretraining_{model}.svg",
            caption="../report/pretraining.rst",
            category="Pretraining",
            labels={"model": "{model}", "file": "training and held-out loss"},
        ),
    log:
        "logs/report/pretraining_{model}.log",
    benchmark:
        "benchmarks/report/pretraining_{model}.tsv"
    wildcard_constraints:
        model=configured("pretrain"),
    conda:
        "../../envs/model.yaml"
    shell:
        "python -m dnabert2 plot pretraining {input}/metrics.jsonl --out {output} > {log} 2>&1"


rule plot_scan_scores:
    input:
        # The per-base scores where the scan writes them, its calls otherwise: an input that changes
        # with the config, so turning bedGraph on or off draws the figure again.
        scores=lambda wildcards: (
            rules.scan_gather.output.bedgraph
            if scan_settings(wildcards)["bedgraph"]
            else rules.scan_gather.output.calls
        ).format(name=wildcards.name),
    output:
        report(
            "results/report/scan_{name}.svg",
            caption="../report/scores.rst",
            category="Scanning",
            labels={"scan": "{name}", "file": "score distribution"},
        ),
    log:
        "logs/report/scan_{name}.log",
    benchmark:
        "benchmarks/report/scan_{name}.tsv"
    wildcard_constraints:
        name=configured("scan"),
    conda:
        "../../envs/model.yaml"
    # Streams the scan's bedGraph in chunks (little memory), but reads a whole genome's per-base
    # tracks: as long as the scan it draws may take (the SLURM profile's default is an hour).
    resources:
        mem_mb=2000,
        runtime=lambda wildcards: scan_settings(wildcards)["runtime"],
    shell:
        "python -m dnabert2 plot scores {input.scores} --out {output} > {log} 2>&1"


rule scan_table:
    input:
        expand(rules.scan_eval.output, name=evaluated_scans()),
    output:
        report(
            "results/report/scans.tsv",
            category="Scanning",
            labels={
                "scan": "all evaluated",
                "file": "every evaluated scan, label by label",
            },
        ),
    log:
        "logs/report/scans.log",
    benchmark:
        "benchmarks/report/scans.tsv"
    conda:
        "../../envs/model.yaml"
    params:
        named=lambda wildcards, input: " ".join(
            f"{name}={path}" for name, path in zip(evaluated_scans(), input)
        ),
    shell:
        "python -m dnabert2 scan-table {params.named} --out {output} > {log} 2>&1"


rule plot_metaplot:
    input:
        expand(rules.scan_eval.output, name=evaluated_scans()),
    output:
        report(
            "results/report/metaplot.svg",
            caption="../report/metaplot.rst",
            category="Scanning",
            labels={
                "scan": "all evaluated",
                "file": "metaplot around annotated sites",
            },
        ),
    log:
        "logs/report/metaplot.log",
    benchmark:
        "benchmarks/report/metaplot.tsv"
    conda:
        "../../envs/model.yaml"
    params:
        named=lambda wildcards, input: " ".join(
            f"{name}={path}" for name, path in zip(evaluated_scans(), input)
        ),
    shell:
        "python -m dnabert2 plot metaplot {params.named} --out {output} > {log} 2>&1"

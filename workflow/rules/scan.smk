rule scan_chunk:
    input:
        unpack(scan_inputs),
    output:
        calls="results/scan/{name}/chunk{i}of{n}.bed",
        summary="results/scan/{name}/chunk{i}of{n}.json",
        # Read once by scan_gather into the scan's tracks: a dense genome's is tens of GB.
        bedgraph=temp(directory("results/scan/{name}/chunk{i}of{n}.bedgraph")),
    log:
        "logs/scan/{name}/chunk{i}of{n}.log",
    benchmark:
        "benchmarks/scan/{name}/chunk{i}of{n}.tsv"
    wildcard_constraints:
        name=configured("scan"),
    conda:
        "../../envs/model.yaml"
    threads: lambda wildcards: scan_settings(wildcards)["workers"] + 1
    resources:
        gpu=lambda wildcards: scan_settings(wildcards)["gpus"],
        mem_mb=lambda wildcards: scan_settings(wildcards)["mem_mb"],
        runtime=lambda wildcards: scan_settings(wildcards)["runtime"],
    params:
        offline=lambda wildcards: hub_offline(scan_settings(wildcards)["model"]),
        model=lambda wildcards: model_argument(scan_model(wildcards.name)),
        source=scan_source,
        options=lambda wildcards: workflow_config.scan_options(scan_settings(wildcards)),
        # Of threads, so not among Snakemake's rerun triggers: loader workers change no call.
        workers=lambda wildcards, threads: threads - 1,
        tracks=lambda wildcards, output: track_options(wildcards, output, chunk=True),
        empty=lambda wildcards, output: empty_tracks(wildcards, output, chunk=True),
        tracks_on=lambda wildcards: tracks_recorded(wildcards, chunk=True),
    shell:
        "{params.empty}{params.offline}python -m dnabert2 scan --model {params.model} {params.source} {params.options} "
        "--chunk {wildcards.i}/{wildcards.n} --workers {params.workers} "
        "--out {output.calls} --summary {output.summary} {params.tracks} > {log} 2>&1"


rule scan_gather:
    input:
        summaries=scan_chunks,
        bedgraphs=lambda wildcards: scan_chunks(wildcards, "bedgraph"),
    output:
        calls="results/scan/{name}.bed",
        summary=report(
            "results/scan/{name}.json",
            category="Scanning",
            labels={"scan": "{name}", "file": "summary"},
        ),
        bedgraph=directory("results/scan/{name}.bedgraph"),
        bigwig=directory("results/scan/{name}.bigwig"),
    log:
        "logs/scan/{name}/gather.log",
    benchmark:
        "benchmarks/scan/{name}/gather.tsv"
    wildcard_constraints:
        name=configured("scan"),
    conda:
        "../../envs/model.yaml"
    # A chunk's: joining a genome's tracks takes as long as scanning a chunk of it, or longer.
    resources:
        mem_mb=lambda wildcards: scan_settings(wildcards)["mem_mb"],
        runtime=lambda wildcards: scan_settings(wildcards)["runtime"],
    params:
        options=lambda wildcards: workflow_config.gather_options(
            scan_settings(wildcards)
        ),
        tracks=lambda wildcards, output: track_options(wildcards, output, chunk=False),
        empty=lambda wildcards, output: empty_tracks(wildcards, output, chunk=False),
        tracks_on=lambda wildcards: tracks_recorded(wildcards, chunk=False),
    shell:
        "{params.empty}python -m dnabert2 scan-gather {input.summaries} --out {output.calls} --summary {output.summary} "
        "{params.options} {params.tracks} > {log} 2>&1"


rule scan_eval:
    input:
        calls=rules.scan_gather.output.calls,
        summary=rules.scan_gather.output.summary,
        annotation=lambda wildcards: genome_annotation(
            scan_settings(wildcards)["genome"]
        ),
    output:
        report(
            "results/scan/{name}/evaluation.json",
            category="Scanning",
            labels={"scan": "{name}", "file": "evaluation against the annotation"},
        ),
    log:
        "logs/scan/{name}/eval.log",
    benchmark:
        "benchmarks/scan/{name}/eval.tsv"
    wildcard_constraints:
        name=configured("scan"),
    conda:
        "../../envs/model.yaml"
    resources:
        mem_mb=lambda wildcards: scan_settings(wildcards)["mem_mb"],
        runtime=lambda wildcards: scan_settings(wildcards)["runtime"],
    params:
        options=lambda wildcards: workflow_config.scan_eval_options(
            scan_settings(wildcards)
        ),
        held_out=held_out_option,
    shell:
        "python -m dnabert2 scan-eval --calls {input.calls} --summary {input.summary} "
        "--annotation {input.annotation:q} {params.options} {params.held_out} "
        "--out {output} > {log} 2>&1"


rule scan_junctions:
    input:
        unpack(alignment_inputs),
        unpack(regions_input),
        genome=lambda wildcards: genome_fasta(scan_settings(wildcards)["genome"]),
    output:
        "results/scan/{name}/junctions.bed",
    log:
        "logs/scan/{name}/junctions.log",
    benchmark:
        "benchmarks/scan/{name}/junctions.tsv"
    wildcard_constraints:
        name=configured("scan"),
    conda:
        "../../envs/sequences.yaml"
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        options=lambda wildcards: workflow_config.junction_options(
            scan_settings(wildcards)
        ),
    shell:
        "python -m dnabert2 junctions {params.options} --bam {input.bam:q} --reference {input.genome} "
        "--out {output} > {log} 2>&1"

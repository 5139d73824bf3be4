rule pretrain:
    input:
        genomes=pretrain_genomes,
        tokenizer=rules.vocab.output.tokenizer,
    output:
        config="results/pretrain/{model}/config.json",
        weights="results/pretrain/{model}/model.safetensors",
        tokenizer="results/pretrain/{model}/tokenizer.json",
        metrics="results/pretrain/{model}/metrics.jsonl",
    log:
        "logs/pretrain/{model}.log",
    benchmark:
        "benchmarks/pretrain/{model}.tsv"
    conda:
        "../../envs/model.yaml"
    threads: 2
    resources:
        gpu=lambda wildcards: pretrain_settings(wildcards)["gpus"],
        mem_mb=lambda wildcards: pretrain_settings(wildcards)["mem_mb"],
        runtime=lambda wildcards: pretrain_settings(wildcards)["runtime"],
    params:
        folder=lambda wildcards, output: Path(output.config).parent,
        # Checkpoints are not outputs: Snakemake deletes a failed job's outputs, and the rerun
        # resumes from them.
        checkpoints=lambda wildcards, output: Path(output.config).parent / "checkpoints",
        launcher=pretrain_launcher,
        genomes=lambda wildcards, input: " ".join(
            f"--genome {g}" for g in input.genomes
        ),
        options=lambda wildcards: workflow_config.pretrain_options(
            pretrain_settings(wildcards)
        ),
    shell:
        "{params.launcher} -m dnabert2 pretrain {params.genomes} --tokenizer {input.tokenizer} "
        "--out {params.folder} --checkpoint-dir {params.checkpoints} --resume "
        "--workers {threads} {params.options} > {log} 2>&1"

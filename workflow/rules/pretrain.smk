rule pretrain:
    input:
        genomes=pretrain_genomes,
        tokenizer="results/vocab/tokenizer.json",
    output:
        multiext(
            "results/pretrain/{model}/",
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "metrics.jsonl",
        ),
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
        # Checkpoints are not outputs: Snakemake deletes a failed job's outputs, and the rerun
        # resumes from them.
        checkpoints=lambda wildcards: f"results/pretrain/{wildcards.model}/checkpoints",
        launcher=pretrain_launcher,
        genomes=lambda wildcards, input: " ".join(
            f"--genome {g}" for g in input.genomes
        ),
        options=pretrain_options,
    shell:
        "{params.launcher} -m dnabert2 pretrain {params.genomes} --tokenizer {input.tokenizer} "
        "--out results/pretrain/{wildcards.model} --checkpoint-dir {params.checkpoints} --resume "
        "--workers {threads} {params.options} > {log} 2>&1"

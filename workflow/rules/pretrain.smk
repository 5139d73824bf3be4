rule pretrain:
    input:
        genomes=pretrain_genomes,
        tokenizer=rules.vocab.output.tokenizer,
    output:
        # The whole folder (config.json, model.safetensors, tokenizer.json, metrics.jsonl): Snakemake
        # clears it before a run, so no file of an earlier model stays in it.
        folder=directory("results/pretrain/{model}"),
    log:
        "logs/pretrain/{model}.log",
    benchmark:
        "benchmarks/pretrain/{model}.tsv"
    wildcard_constraints:
        model=configured("pretrain"),
    conda:
        "../../envs/model.yaml"
    # Each GPU's process feeds it with loader workers of its own.
    threads: lambda wildcards: 4 * max(pretrain_settings(wildcards)["gpus"], 1)
    resources:
        gpu=lambda wildcards: pretrain_settings(wildcards)["gpus"],
        # torchrun --standalone starts its processes on one node: SLURM must not spread the GPUs.
        nodes=1,
        mem_mb=lambda wildcards: pretrain_settings(wildcards)["mem_mb"],
        runtime=lambda wildcards: pretrain_settings(wildcards)["runtime"],
    params:
        # Checkpoints are not outputs, and outside the output folder: Snakemake deletes a failed
        # job's outputs, and the rerun resumes from them (--resume); those of other settings, which
        # a rerun after the settings changed finds, are removed and the run starts afresh (--force).
        checkpoints=checkpoint_dir,
        launcher=pretrain_launcher,
        genomes=lambda wildcards, input: " ".join(
            f"--genome {g}" for g in input.genomes
        ),
        options=lambda wildcards: workflow_config.pretrain_options(
            pretrain_settings(wildcards)
        ),
        # Of threads, so not among Snakemake's rerun triggers: the settings a run continues with.
        continuing=lambda wildcards, threads: workflow_config.pretrain_options(
            pretrain_settings(wildcards), continuing=True
        ),
        # --workers is per process: the job's threads shared over its torchrun processes.
        workers=lambda wildcards, threads: max(
            threads // max(pretrain_settings(wildcards)["gpus"], 1), 1
        ),
    shell:
        "{params.launcher} -m dnabert2 pretrain {params.genomes} --tokenizer {input.tokenizer} "
        "--out {output.folder} --checkpoint-dir {params.checkpoints} --resume --force "
        "--workers {params.workers} {params.options} {params.continuing} > {log} 2>&1"

rule tasks:
    input:
        genome=lambda wildcards: genome_fasta(task_settings(wildcards)["genome"]),
        annotation=task_annotation,
    output:
        # The whole folder: Snakemake clears it before a run, so no file of an earlier run stays.
        folder=directory("results/tasks/{task}"),
    log:
        "logs/tasks/{task}.log",
    benchmark:
        "benchmarks/tasks/{task}.tsv"
    wildcard_constraints:
        task=configured("tasks"),
    conda:
        "../../envs/model.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        kind=lambda wildcards: task_settings(wildcards)["kind"],
        options=lambda wildcards: workflow_config.task_options(task_settings(wildcards)),
    shell:
        "python -m dnabert2 tasks {params.kind} {params.options} --genome {input.genome} "
        "--annotation {input.annotation:q} --out {output.folder} > {log} 2>&1"


rule finetune:
    input:
        model=lambda wildcards: model_input(finetune_settings(wildcards)["model"]),
        task=lambda wildcards: task_input(finetune_settings(wildcards)["task"]),
    output:
        # The whole folder: a LoRA run after a full one (or the reverse) leaves no stale weights.
        folder=report(
            directory("results/finetune/{name}"),
            # A pattern finds files through its wildcards; this one's matches metrics.json only.
            patterns=["{file,metrics}.json"],
            category="Fine-tuning",
            labels={"run": "{name}", "file": "test metrics (mean, sd over seeds)"},
        ),
    log:
        "logs/finetune/{name}.log",
    benchmark:
        "benchmarks/finetune/{name}.tsv"
    wildcard_constraints:
        name=configured("finetune"),
    conda:
        "../../envs/model.yaml"
    threads: MODEL_THREADS
    resources:
        gpu=lambda wildcards: finetune_settings(wildcards)["gpus"],
        mem_mb=lambda wildcards: finetune_settings(wildcards)["mem_mb"],
        runtime=lambda wildcards: finetune_settings(wildcards)["runtime"],
    params:
        offline=lambda wildcards: hub_offline(finetune_settings(wildcards)["model"]),
        command=finetune_command,
        task=lambda wildcards: task_folder(finetune_settings(wildcards)["task"]),
        options=lambda wildcards: workflow_config.finetune_options(
            finetune_settings(wildcards)
        ),
    shell:
        "{params.offline}python -m dnabert2 {params.command} --data {params.task:q} "
        "--out {output.folder} {params.options} > {log} 2>&1"


rule evaluate:
    input:
        model=rules.finetune.output.folder,
        task=lambda wildcards: task_input(finetune_settings(wildcards)["task"]),
    output:
        table=report(
            "results/evaluate/{name}.tsv",
            category="Evaluation",
            labels={"run": "{name}", "file": "test metrics beside the baseline"},
        ),
        markdown="results/evaluate/{name}.md",
    log:
        "logs/evaluate/{name}.log",
    benchmark:
        "benchmarks/evaluate/{name}.tsv"
    wildcard_constraints:
        name=configured("finetune"),
    conda:
        "../../envs/model.yaml"
    threads: MODEL_THREADS
    # Scoring the test split of a 117M model wants the fine-tuning run's device and memory.
    resources:
        gpu=lambda wildcards: min(finetune_settings(wildcards)["gpus"], 1),
        mem_mb=lambda wildcards: finetune_settings(wildcards)["mem_mb"],
        runtime=lambda wildcards: finetune_settings(wildcards)["runtime"],
    params:
        offline=lambda wildcards: hub_offline(wildcards.name),
        task=lambda wildcards: task_folder(finetune_settings(wildcards)["task"]),
        device=lambda wildcards: workflow_config.device_of(finetune_settings(wildcards)),
    shell:
        "{params.offline}python -m dnabert2 evaluate --model {input.model} --data {params.task:q} "
        "--out {output.table} --baseline kmer --device {params.device} > {log} 2>&1"

rule tasks:
    input:
        genome=lambda wildcards: genome_fasta(task_settings(wildcards)["genome"]),
        annotation=task_annotation,
    output:
        csv=multiext("results/tasks/{task}/", "train.csv", "dev.csv", "test.csv"),
        description="results/tasks/{task}/task.json",
    log:
        "logs/tasks/{task}.log",
    benchmark:
        "benchmarks/tasks/{task}.tsv"
    conda:
        "../../envs/model.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        kind=lambda wildcards: task_settings(wildcards)["kind"],
        options=lambda wildcards: workflow_config.task_options(task_settings(wildcards)),
        folder=lambda wildcards, output: Path(output.description).parent,
    shell:
        "python -m dnabert2 tasks {params.kind} {params.options} --genome {input.genome} "
        "--annotation {input.annotation} --out {params.folder} > {log} 2>&1"


rule finetune:
    input:
        model=finetune_model,
        task=lambda wildcards: task_files(finetune_settings(wildcards)["task"]),
    output:
        metrics=report(
            "results/finetune/{name}/metrics.json",
            category="Fine-tuning",
            labels={"run": "{name}", "file": "test metrics (mean, sd over seeds)"},
        ),
        info="results/finetune/{name}/finetune.json",
    log:
        "logs/finetune/{name}.log",
    benchmark:
        "benchmarks/finetune/{name}.tsv"
    conda:
        "../../envs/model.yaml"
    threads: 2
    resources:
        gpu=lambda wildcards: finetune_settings(wildcards)["gpus"],
        mem_mb=lambda wildcards: finetune_settings(wildcards)["mem_mb"],
        runtime=lambda wildcards: finetune_settings(wildcards)["runtime"],
    params:
        model=lambda wildcards: model_folder(finetune_settings(wildcards)["model"]),
        task=lambda wildcards: task_folder(finetune_settings(wildcards)["task"]),
        options=lambda wildcards: workflow_config.finetune_options(
            finetune_settings(wildcards)
        ),
        folder=lambda wildcards, output: Path(output.metrics).parent,
    shell:
        "python -m dnabert2 finetune --model {params.model} --data {params.task} "
        "--out {params.folder} {params.options} > {log} 2>&1"


rule evaluate:
    input:
        model=rules.finetune.output.metrics,
        task=lambda wildcards: task_files(finetune_settings(wildcards)["task"]),
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
    conda:
        "../../envs/model.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        model=lambda wildcards, input: Path(input.model).parent,
        task=lambda wildcards: task_folder(finetune_settings(wildcards)["task"]),
    shell:
        "python -m dnabert2 evaluate --model {params.model} --data {params.task} "
        "--out {output.table} --baseline kmer --device cpu > {log} 2>&1"

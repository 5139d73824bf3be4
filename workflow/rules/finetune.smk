rule tasks:
    input:
        genome=lambda wildcards: genome_fasta(task_settings(wildcards)["genome"]),
        annotation=task_annotation,
    output:
        multiext(
            "results/tasks/{task}/", "train.csv", "dev.csv", "test.csv", "task.json"
        ),
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
        options=task_options,
    shell:
        "python -m dnabert2 tasks {params.options} --genome {input.genome} "
        "--annotation {input.annotation} --out results/tasks/{wildcards.task} > {log} 2>&1"


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
        options=finetune_options,
    shell:
        "python -m dnabert2 finetune --model {params.model} --data {params.task} "
        "--out results/finetune/{wildcards.name} {params.options} > {log} 2>&1"


rule evaluate:
    input:
        model="results/finetune/{name}/metrics.json",
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
        task=lambda wildcards: task_folder(finetune_settings(wildcards)["task"]),
    shell:
        "python -m dnabert2 evaluate --model results/finetune/{wildcards.name} --data {params.task} "
        "--out {output.table} --baseline kmer --device cpu > {log} 2>&1"

rule vocab:
    input:
        vocab_genomes(),
    output:
        tokenizer="results/vocab/tokenizer.json",
        report="results/vocab/report.json",
    log:
        "logs/vocab/vocab.log",
    benchmark:
        "benchmarks/vocab/vocab.tsv"
    conda:
        "../../envs/sequences.yaml"
    threads: 2
    resources:
        mem_mb=workflow_config.vocab_mem_mb(config),
        runtime=120,
    params:
        genomes=lambda wildcards, input: " ".join(f"--genome {g}" for g in input),
        options=workflow_config.vocab_options(config),
    shell:
        "RAYON_NUM_THREADS={threads} python -m dnabert2 vocab {params.genomes} --out {output.tokenizer} "
        "--report {output.report} {params.options} > {log} 2>&1"

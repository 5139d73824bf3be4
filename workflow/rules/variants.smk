rule score_variants:
    input:
        unpack(variant_inputs),
    output:
        # with its index beside it: .tbi, or .csi where a record lies past 2^29 (contigs over 512 Mbp)
        vcf="results/variants/{name}.vcf.gz",
        table="results/variants/{name}.tsv",
    log:
        "logs/variants/{name}.log",
    benchmark:
        "benchmarks/variants/{name}.tsv"
    wildcard_constraints:
        name=configured("variants"),
    conda:
        "../../envs/model.yaml"
    threads: MODEL_THREADS
    resources:
        gpu=lambda wildcards: variant_settings(wildcards)["gpus"],
        mem_mb=lambda wildcards: variant_settings(wildcards)["mem_mb"],
        runtime=lambda wildcards: variant_settings(wildcards)["runtime"],
    params:
        offline=lambda wildcards: hub_offline(variant_settings(wildcards)["model"]),
        model=lambda wildcards: model_argument(variant_model(wildcards.name)),
        options=lambda wildcards: workflow_config.variant_options(
            variant_settings(wildcards)
        ),
    shell:
        "{params.offline}python -m dnabert2 variants --model {params.model} --vcf {input.vcf:q} --fasta {input.genome} "
        "--out {output.vcf} --tsv {output.table} {params.options} > {log} 2>&1"

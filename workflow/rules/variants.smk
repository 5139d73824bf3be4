rule score_variants:
    input:
        unpack(variant_inputs),
    output:
        vcf="results/variants/{name}.vcf.gz",
        # an output, so that Snakemake dates it with the VCF (an index older than its file, htslib warns of)
        index="results/variants/{name}.vcf.gz.csi",
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
        "--out {output.vcf} --index csi --tsv {output.table} {params.options} > {log} 2>&1"

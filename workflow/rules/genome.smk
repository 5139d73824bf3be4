rule download_genome:
    input:
        local_source,
    output:
        fasta="resources/genomes/{genome}/genome.fa.gz",
        fai="resources/genomes/{genome}/genome.fa.gz.fai",
        gzi="resources/genomes/{genome}/genome.fa.gz.gzi",
    log:
        "logs/genome/{genome}.log",
    benchmark:
        "benchmarks/genome/{genome}.tsv"
    wildcard_constraints:
        genome=configured("genomes"),
    # Downloads need the internet, which a cluster's compute nodes often lack: they run where
    # snakemake runs (the login node), under a host pipeline's names for this rule too. A genome given
    # as a local file is compressed and indexed there too (minutes for a mammal).
    localrule: True
    conda:
        "../../envs/sequences.yaml"
    resources:
        mem_mb=1000,
        runtime=240,
    params:
        source=lambda wildcards: config["genomes"][wildcards.genome]["source"],
        checksum=checksum_option,
    shell:
        "python -m dnabert2 download {params.source:q} --out {output.fasta} {params.checksum} > {log} 2>&1"

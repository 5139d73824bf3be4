from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/genome.smk"
include: "workflow/rules/vocab.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"


rule all:
    input:
        expand("resources/genomes/{genome}/genome.fa.gz", genome=config["genomes"]),
        "results/vocab/tokenizer.json",
        expand("results/pretrain/{model}/model.safetensors", model=config["pretrain"]),
        expand("results/evaluate/{name}.tsv", name=config["finetune"]),

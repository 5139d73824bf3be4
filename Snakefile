from snakemake.utils import min_version

min_version("9.0")


# The bundled default, unless the command line names other config files: those then stand alone
# rather than being merged into the example's genomes and runs.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/genome.smk"
include: "workflow/rules/vocab.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/scan.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    input:
        expand("resources/genomes/{genome}/genome.fa.gz", genome=config["genomes"]),
        # A vocabulary is learned for pretraining; runs that start from models on disk need none.
        ["results/vocab/tokenizer.json"] if config["pretrain"] else [],
        expand("results/pretrain/{model}/model.safetensors", model=config["pretrain"]),
        expand("results/evaluate/{name}.tsv", name=config["finetune"]),
        expand("results/scan/{name}.bed", name=config["scan"]),
        expand("results/report/pretraining_{model}.svg", model=config["pretrain"]),
        expand("results/report/scan_{name}.svg", name=config["scan"]),
        [
            f"results/scan/{name}/junctions.bed"
            for name, s in config["scan"].items()
            if s["bam"]
        ],
        [
            f"results/scan/{name}/evaluation.json"
            for name, s in config["scan"].items()
            if s["evaluate"]
        ],

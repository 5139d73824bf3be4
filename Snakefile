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
include: "workflow/rules/variants.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    input:
        expand(rules.download_genome.output.fasta, genome=config["genomes"]),
        # A vocabulary is learned for pretraining; runs that start from models on disk need none.
        [rules.vocab.output.tokenizer] if config["pretrain"] else [],
        expand(rules.pretrain.output.folder, model=config["pretrain"]),
        expand(rules.evaluate.output.table, name=window_runs()),
        expand(rules.scan_gather.output.calls, name=config["scan"]),
        expand(rules.plot_pretraining.output, model=config["pretrain"]),
        expand(rules.plot_scan_scores.output, name=config["scan"]),
        expand(
            rules.scan_junctions.output,
            name=[name for name, s in config["scan"].items() if s["bam"]],
        ),
        expand(rules.scan_eval.output, name=evaluated_scans()),
        expand(rules.score_variants.output, name=config["variants"]),
        [rules.scan_table.output, rules.plot_metaplot.output]
        if evaluated_scans()
        else [],

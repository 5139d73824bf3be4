# The workflow is workflow/Snakefile, where the Snakemake workflow catalog's layout puts it and
# where another pipeline's `module` points; this file keeps `snakemake -s Snakefile` working. Snakemake
# takes no default target from an included file, hence the rule naming `all`'s.


include: "workflow/Snakefile"


rule default:
    default_target: True
    input:
        rules.all.input,

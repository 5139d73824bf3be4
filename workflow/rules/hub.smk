# Models named by Hugging Face Hub id are fetched once, here, into the Hub cache (HF_HOME); the jobs
# that read one then run with HF_HUB_OFFLINE=1 (hub_offline), so they need no network and all use the
# commit fetched here, which the TSV records. `--forcerun fetch_model` fetches a branch's newer commit.
rule fetch_model:
    output:
        "resources/hub/{repo}.tsv",
    log:
        "logs/hub/{repo}.log",
    benchmark:
        "benchmarks/hub/{repo}.tsv"
    wildcard_constraints:
        repo=hub_models(),
    # On a cluster's login node, where the internet is; a directive rather than `localrules:`, so
    # that it holds under the names a host pipeline gives this workflow's rules.
    localrule: True
    conda:
        "../../envs/model.yaml"
    resources:
        mem_mb=1000,
        runtime=120,
    shell:
        "python -m dnabert2 fetch {wildcards.repo:q} --out {output} > {log} 2>&1"

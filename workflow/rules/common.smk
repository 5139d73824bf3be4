import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.sourcecache import LocalSourceFile

# Read from disk (run here, or a module with a local path): the rules run the package of the checkout
# this file lies in (workflow/rules/ → its root), found from this file, never from the host's folder
# or working directory. Read from elsewhere (a module's github(...), a URL, git+file:): the dnabert2
# package installed beside Snakemake and in the rules' environments, of the workflow's version.
LOCAL = isinstance(workflow.current_basedir, LocalSourceFile)
if LOCAL:
    sys.path.insert(0, str(Path(workflow.current_basedir).parents[1]))
try:
    from dnabert2 import workflow_config
except ImportError as error:
    raise WorkflowError(
        "this workflow was read from a remote source: install its dnabert2 package beside "
        "Snakemake (pip install a checkout of the workflow's tag)"
    ) from error
from dnabert2.hub import hub_id
from dnabert2.sequences.alignments import index_files
from dnabert2.sources import local_path
from dnabert2.wrappers import use_checkout

try:
    workflow_config.check(
        config,
        workflow.source_path("../schemas/config.schema.yaml"),
        workflow.configfiles,
    )
except ValueError as error:  # one line, as the commands give one, not Python's stack
    raise WorkflowError(str(error)) from None
if LOCAL:
    use_checkout()
else:
    try:
        workflow_config.check_version(
            workflow.source_path("../../dnabert2/__init__.py")
        )
    except ValueError as error:
        raise WorkflowError(str(error)) from None


# A job running a model on the CPU computes with as many threads as it has (Snakemake sets
# OMP_NUM_THREADS to them): with one, as rules without threads get, variants of 400 SNVs took 13.8 s
# against 8.2 s with two (the tiny transformer, a 2-core machine). --set-threads RULE=N gives more.
MODEL_THREADS = 2


# Config names (the schema's propertyNames) never hold a slash, so one rule's files are not read
# as another's.
wildcard_constraints:
    name="[A-Za-z0-9_.-]+",
    i=r"\d+",
    n=r"\d+",


def configured(section):
    """The names of a config section's entries, as the wildcard constraint of the jobs making them. A
    folder given by path into this workflow's results/ (./results/finetune/old, made by an earlier
    config) is then a file on disk, not a job of no settings."""
    return "|".join(map(re.escape, config[section])) or "(?!)"


def genome_fasta(name):
    return rules.download_genome.output.fasta.format(genome=name)


def users(path):
    """A file or folder the config names, as an input: where it is, also when a host workflow imports
    this one under a `prefix:`, which Snakemake adds to every other path of a rule."""
    return local(str(path))


def local_source(wildcards):
    """The source file when it is on disk, so that changing it reruns the download."""
    path = local_path(config["genomes"][wildcards.genome]["source"])
    return [users(path)] if path else []


def checksum_option(wildcards):
    entry = config["genomes"][wildcards.genome]
    return " ".join(
        f"--{kind} {entry[kind]}" for kind in ("sha256", "md5") if kind in entry
    )


def vocab_genomes():
    return [genome_fasta(g) for g in (config["vocab"]["genomes"] or config["genomes"])]


def pretrain_settings(wildcards):
    return config["pretrain"][wildcards.model]


def pretrain_genomes(wildcards):
    names = pretrain_settings(wildcards)["genomes"] or config["genomes"]
    return [genome_fasta(g) for g in names]


def checkpoint_dir(wildcards):
    """Beside results/pretrain: under a host's module prefix too, which a param's path does not get
    (the output's path has it). Of wildcards alone, so that the param stays a rerun trigger.
    """
    folder = Path(rules.pretrain.output.folder.format(model=wildcards.model))
    return str(folder.parents[1] / "checkpoints" / wildcards.model)


def pretrain_launcher(wildcards):
    """One process per GPU through torchrun when the job has several; plain python otherwise. Snakemake
    sets OMP_NUM_THREADS to the job's threads, which torchrun then leaves to every process (eight
    processes of 32 intra-op threads on 32 cores): torchrun's own default of 1 is set again.
    """
    gpus = pretrain_settings(wildcards)["gpus"]
    return (
        f"OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node {gpus}"
        if gpus > 1
        else "python"
    )


def task_settings(wildcards):
    return config["tasks"][wildcards.task]


def task_annotation(wildcards):
    return genome_annotation(task_settings(wildcards)["genome"])


def genome_annotation(genome):
    return users(config["genomes"][genome]["annotation"])


def task_folder(task):
    """A task built by the workflow, or a GUE task folder on disk."""
    return (
        rules.tasks.output.folder.format(task=task) if task in config["tasks"] else task
    )


def task_input(task):
    """The input standing for a task: its folder when built here, else the CSV files on disk."""
    if task in config["tasks"]:
        return task_folder(task)
    return [users(f) for f in workflow_config.task_files(task)]


def model_folder(model):
    """A model pretrained by the workflow, or a model folder on disk (e.g. the released files)."""
    if model in config["pretrain"]:
        return rules.pretrain.output.folder.format(model=model)
    return model


# A host pipeline may use only some of these rules, fetch_model not among them; then the jobs fetch
# models given by Hub id themselves, as any command does.
FETCHES_MODELS = workflow.modifier.avail_rulename("fetch_model") is not None


def hub_models():
    """The Hub ids the config names as models, as fetch_model's wildcard constraint: a host's own
    resources/hub/owner/name.tsv is no job of ours."""
    named = {
        s["model"]
        for section in ("finetune", "scan", "variants")
        for s in config[section].values()
    }
    return "|".join(sorted(map(re.escape, filter(hub_id, named)))) or "(?!)"


def fetched(model):
    """Whether fetch_model fetches the model: one named by Hugging Face Hub id."""
    return FETCHES_MODELS and hub_id(model) is not None


def hub_fetched(model):
    """What fetch_model writes for a model it fetches: its TSV, the commit on the first row."""
    return rules.fetch_model.output[0].format(repo=model)


def model_argument(model):
    """A model (a path, or a Hub id) as a job's --model: a fetched one as the commit fetch_model fetched
    (owner/name@commit, read from its TSV), so every job reads that commit, wherever the branches of a
    shared Hub cache point later."""
    if fetched(model):
        return f'"$(cut -f2 {shlex.quote(hub_fetched(model))} | sed -n 2p)"'
    return shlex.quote(str(model))


def hub_offline(model):
    """For the jobs reading a fetched model, or one fine-tuned here from such a model: they need no
    network, and reach none."""
    if model in config["finetune"]:
        model = config["finetune"][model]["model"]
    return "HF_HUB_OFFLINE=1 " if fetched(model) else ""


def model_input(model):
    """The input standing for a model: its folder when pretrained here, fetch_model's TSV for a model
    on the Hugging Face Hub, else its config.json and weights on disk; the CNN baseline stands for no
    file.
    """
    if model == workflow_config.CNN:
        return []
    if hub_id(model):
        return hub_fetched(model) if fetched(model) else []
    if model in config["pretrain"]:
        return model_folder(model)
    # A host rule's directory() output, named as Snakemake names it (./models/m is models/m).
    if workflow_config.to_make(model):
        return users(Path(model))
    return [users(f) for f in workflow_config.model_files(model, adapter=False)]


def finetune_command(wildcards):
    """`finetune --model M`, or `cnn` for the CNN baseline."""
    model = finetune_settings(wildcards)["model"]
    if model == workflow_config.CNN:
        return "cnn"
    return f"finetune --model {model_argument(model_folder(model))}"


def window_runs():
    """Fine-tuning runs of window tasks, which `evaluate` scores beside the k-mer baseline (dense
    runs are scored by scanning and scan-eval)."""
    return [
        name
        for name, s in config["finetune"].items()
        if not workflow_config.is_dense_task(config, s["task"])
    ]


def evaluated_scans():
    return [name for name, s in config["scan"].items() if s["evaluate"]]


def held_out_option(wildcards):
    """scan-eval's --held-out: the test split of the scan's task, when asked."""
    if not scan_settings(wildcards)["held_out"]:
        return ""
    task = workflow_config.scan_task(config, wildcards.name)
    return f"--held-out {task_folder(task)}"


def finetune_settings(wildcards):
    return config["finetune"][wildcards.name]


def scan_settings(wildcards):
    return config["scan"][wildcards.name]


def fine_tuned(model):
    """A model fine-tuned by the workflow, or a fine-tuned model folder on disk or on the Hub."""
    if model in config["finetune"]:
        return rules.finetune.output.folder.format(name=model)
    return model


def fine_tuned_input(model):
    """The input standing for a fine-tuned model: its folder when fine-tuned here, fetch_model's TSV
    for a model on the Hub, else its files on disk (config and weights, or a LoRA folder's adapter's).
    """
    if model in config["finetune"]:
        return {"model": fine_tuned(model)}
    if workflow_config.to_make(model):  # as in model_input
        return {"model": users(Path(model))}
    if hub_id(model):
        return {"model": hub_fetched(model)} if fetched(model) else {}
    return {"model": [users(f) for f in workflow_config.model_files(model)]}


def scan_model(scan):
    return fine_tuned(config["scan"][scan]["model"])


def variant_settings(wildcards):
    return config["variants"][wildcards.name]


def variant_model(name):
    return fine_tuned(config["variants"][name]["model"])


def variant_inputs(wildcards):
    s = variant_settings(wildcards)
    return {
        "vcf": users(s["vcf"]),
        "genome": genome_fasta(s["genome"]),
        **fine_tuned_input(s["model"]),
    }


def scan_inputs(wildcards):
    s = scan_settings(wildcards)
    inputs = {"genome": genome_fasta(s["genome"]), **fine_tuned_input(s["model"])}
    if s["bam"]:
        inputs |= alignment_inputs(wildcards)
    return inputs | regions_input(wildcards)


def regions_input(wildcards):
    """A scan's regions BED, where it names one: its chunks scan them, its junctions are theirs."""
    regions = scan_settings(wildcards)["regions"]
    return {"regions": users(regions)} if regions else {}


def alignment_inputs(wildcards):
    """A scan's BAM or CRAM and its index, which every scan of one needs: the one the config names, the
    one beside it, or where none is yet the one `samtools index` writes, so that a rule of a host
    workflow that makes it runs first.
    """
    settings = scan_settings(wildcards)
    bam, found = settings["bam"], index_files(settings["bam"])
    index = settings["bam_index"] or (
        found[0] if found else f"{bam}{'.crai' if bam.endswith('.cram') else '.bai'}"
    )
    return {"bam": users(bam), "bam_index": users(index)}


def scan_source(wildcards, input):
    """What a chunk scans: the genome, or the BAM (along its reads, or the reference it covers)."""
    if scan_settings(wildcards)["mode"] == "fasta":
        return f"--fasta {input.genome}"
    return f"--bam {shlex.quote(input.bam)} --reference {input.genome}"


def scan_chunks(wildcards, output="summary"):
    """One output of every chunk of a scan: its summary, or its bedGraph folder."""
    n = scan_settings(wildcards)["chunks"]
    return expand(
        getattr(rules.scan_chunk.output, output), name=wildcards.name, i=range(n), n=n
    )


def tracks_wanted(wildcards, chunk):
    """Track kind → whether this job writes it; chunks write the bedGraph the gathering reads."""
    s = scan_settings(wildcards)
    if chunk:
        return {"bedgraph": s["bedgraph"] or s["bigwig"]}
    return {"bedgraph": s["bedgraph"], "bigwig": s["bigwig"]}


def tracks_recorded(wildcards, chunk):
    """The tracks a job writes, as a param of wildcards alone: Snakemake leaves params that read
    output out of its rerun triggers, so turning a track on or off would rerun nothing.
    """
    wanted = tracks_wanted(wildcards, chunk)
    return " ".join(kind for kind, on in wanted.items() if on) or "none"


def track_options(wildcards, output, chunk):
    wanted = tracks_wanted(wildcards, chunk)
    return " ".join(f"--{kind} {output[kind]}" for kind, on in wanted.items() if on)


def empty_tracks(wildcards, output, chunk):
    """The shell prefix that leaves an empty folder where a job writes no tracks."""
    wanted = tracks_wanted(wildcards, chunk)
    return "".join(
        f"mkdir -p {output[kind]}; " for kind, on in wanted.items() if not on
    )

#!/usr/bin/env bash
# Every GPU check and benchmark in one call of at most 9 minutes (GPU_SH_SECONDS, default 540, for the
# steps; each is cut to what is left), for a machine with torch, triton,
# transformers, peft, tokenizers and pandas preinstalled:
#   1. the GPU-only tests: bf16 embeddings whatever the batch (issue 15), bf16 weights, scanners that
#      never wait for the GPU, 4 × 8192 tokens, half precision against float64;
#   2. the figures the open issues ask for, base preset in bf16: genome bp/s of a per-base scan against
#      a window scan (bench/dense_scan.py; the human genome in 15 minutes is 3.5 Mbp/s) and variants/s
#      (bench/variants.py; the goal, ten times SpliceAI's 25,000 an hour on a GPU, is 69/s);
#   3. bench/model.py and bench/pretrain.py with short settings;
#   4. the rest of the kernel and model tests (every tuning configuration, block-edge lengths,
#      gradients; tests/test_attention.py, tests/test_model.py);
#   5. bench/attention.py (beside SDPA ± bias, FlexAttention and flash-attn where installed) and
#      bench/scan.py;
# in that order, so that a call cut short keeps the most wanted figures; each step time-boxed, each
# benchmark printing its rows as it measures them, then one table of the steps and every row.
#
#   bash bench/gpu.sh --prepare   # here, once: fill bench/carry (git-ignored) with what the device lacks
#   bash bench/gpu.sh [OUT]       # there, with bench/carry carried: table.md, steps.tsv and logs.tgz
#                                 # under OUT (default $OUT, else /tmp/dnabert2-gpu)
#
# The device machine (Python 3.12, torch, triton, transformers, peft, pandas, scikit-learn …) reaches
# no package index and has no ../shared: --prepare fetches wheels of the packages it lacks (pysam,
# Biopython, pyBigWig) and copies the shared data the tests read. Record every figure in BENCHMARKS.md
# with the device and date.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
carry=bench/carry

if [ "${1:-}" = --prepare ]; then
  set -e
  rm -rf "$carry"
  mkdir -p "$carry/wheels" "$carry/shared"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$carry/wheels" pysam biopython pyBigWig
  # ../shared is read-only: copies keeping its modes could not be removed by the next --prepare
  cp -r --no-preserve=mode ../shared/data ../shared/official_117m_state_dict_layout.json "$carry/shared/"  # ~10 MB
  # Which code the figures are of: the commit, and whether files differed from it.
  echo "dnabert2 $(git rev-parse --short HEAD), $(git status --porcelain | wc -l) file(s) changed since" > "$carry/REVISION"
  du -sh "$carry"
  exit 0
fi

# The device returns at most 8 files from OUT: the table, the steps and one archive of the logs, all
# rewritten after each step, so that a call cut short still returns what ran.
out=${1:-${OUT:-/tmp/dnabert2-gpu}}
logs=$(mktemp -d /tmp/dnabert2-gpu-logs.XXXX)
trap 'rm -rf "$logs"' EXIT
mkdir -p "$out"
: > "$out/steps.tsv"
began=$(date +%s)
budget=${GPU_SH_SECONDS:-540}  # the steps' share of the call's 600 s, the wheels' install included

table() {
  {
    echo "# GPU check, $(date -u +%Y-%m-%d), $(head -1 "$logs/device.txt")"
    tail -n +2 "$logs/device.txt"
    cat "$carry/REVISION" 2>/dev/null
    echo
    echo "| step | exit (124, 137: timed out; skipped: no time left) | seconds |"
    echo "|---|---|---|"
    while IFS=$'\t' read -r name rc seconds; do echo "| $name | $rc | $seconds |"; done < "$out/steps.tsv"
    while IFS=$'\t' read -r name _; do
      [ -f "$logs/$name.log" ] || continue
      echo
      echo "## $name"
      case $name in
        *tests|preflight) tail -n 3 "$logs/$name.log" ;;
        *) grep -E '^(device:|check |\|)' "$logs/$name.log" || tail -n 5 "$logs/$name.log" ;;
      esac
    done < "$out/steps.tsv"
  } > "$out/table.md"
  tar -czf "$out/logs.tgz" -C "$logs" .
}

if [ -d "$carry/wheels" ]; then
  python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$carry"/wheels/*.whl > "$logs/install.log" 2>&1 ||
    echo "gpu.sh: some carried wheels did not install (see install.log)" >&2
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d ../shared/data ] || export DNABERT2_SHARED="$PWD/$carry/shared"
shared=${DNABERT2_SHARED:-../shared}
tokenizer="$shared/data/tokenizers/dnabert2_117m_tokenizer.json"  # the released one: its token lengths
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$logs/device.txt" 2>&1
python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton',
triton.__version__, 'transformers', transformers.__version__)" >> "$logs/device.txt" 2>&1
echo "$(nproc) CPU cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)" >> "$logs/device.txt"

# Without the carried wheels and data every step would fail: say so at once, not after the whole call.
# E. coli (4.6 Mbp, bgzip) is what the scans time; the dense scans read it four times over, as four
# contigs (18.6 Mbp), since at the goal's 3.5 Mbp/s one copy takes a second, which the loader's
# start would dominate.
ecoli=/tmp/dnabert2-ecoli.fa.gz
ecoli4=/tmp/dnabert2-ecoli4.fa.gz
if ! python3 -c "
import sys, torch, pysam, Bio, pyBigWig, dnabert2.sequences as s
assert torch.cuda.is_available(), 'no CUDA device'
s.write_indexed_fasta(sys.argv[1], sys.argv[2])
(name, sequence), = s.read_records(sys.argv[1])
with open('/tmp/dnabert2-ecoli4.fa', 'w') as out:
    out.writelines(f'>{name}.{i}\\n{sequence}\\n' for i in range(1, 5))
s.write_indexed_fasta('/tmp/dnabert2-ecoli4.fa', sys.argv[3])" "$shared/data/genomes/ecoli_k12_mg1655.fna.gz" "$ecoli" \
  "$ecoli4" > "$logs/preflight.log" 2>&1 || [ ! -f "$tokenizer" ]; then
  echo "gpu.sh: not ready to run (no GPU, or bench/carry not carried after bash bench/gpu.sh --prepare):" >&2
  tail -n 3 "$logs/preflight.log" >&2
  printf 'preflight\t1\t%s\n' "$(($(date +%s) - began))" >> "$out/steps.tsv"
  table
  exit 3
fi

# step NAME SECONDS COMMAND...: run it time-boxed (within what is left of the budget), its output in
# NAME.log, a row in steps.tsv, then the table and logs rewritten.
step() {
  local name=$1 limit=$2 start rc left
  shift 2
  start=$(date +%s)
  left=$((budget - (start - began) - 10))
  if [ "$left" -lt 20 ]; then
    printf '%s\tskipped\t0\n' "$name" >> "$out/steps.tsv"
    table
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  # Under OUT while it runs: a call killed outright still returns the step it was in.
  timeout --kill-after=10 "$limit" "$@" > "$out/current.log" 2>&1
  rc=$?
  mv "$out/current.log" "$logs/$name.log"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - start))" >> "$out/steps.tsv"
  table
}

# The limits add up to 490 s, leaving the wheels' install and the preflight their share of the budget.
gpu_only="bf16_embeddings or bf16_inference or scanners_queue or 8192 or half_precision or fp32_on_a_gpu or bias_would_not_fit"
step gpu-tests 60 python3 -m pytest -v -p no:cacheprovider tests/test_attention.py tests/test_model.py -k "$gpu_only"
step dense 110 python3 bench/dense_scan.py --genome "$ecoli4" --tokenizer "$tokenizer" --workers 8 --dense 3000/150 2000/100
step variants 110 python3 bench/variants.py --genome example/ce1pct.fa.gz --annotation example/ce1pct.gff3.gz \
  --contig IV --preset base --device cuda --random-snvs 20000 --out /tmp/dnabert2-variants  # a 0.5 GB model: not under OUT
step model 30 python3 bench/model.py --shapes 256x128,64x512 --tokenizer "$tokenizer"
step pretrain 35 python3 bench/pretrain.py --tokenizer "$tokenizer"
step tests 70 python3 -m pytest -q -p no:cacheprovider tests/test_attention.py tests/test_model.py -k "not ($gpu_only)"
step attention 45 python3 bench/attention.py --check --dtype bf16 --tokenizer "$tokenizer"
step scan 30 python3 bench/scan.py --genome "$ecoli" --tokenizer "$tokenizer" --workers 8
cat "$out/table.md"

#!/usr/bin/env bash
# Every GPU check and benchmark in one call of at most 9 minutes, for a machine with torch, triton,
# transformers, peft, tokenizers and pandas preinstalled:
#   1. the kernel and model tests on the device: bf16 and fp16 against float64, forward and gradients,
#      block-edge lengths, every tuning configuration, 4 × 8192 tokens, bf16 embeddings whatever the
#      batch, scanners that never wait for the GPU (tests/test_attention.py, tests/test_model.py);
#   2. bench/attention.py (beside SDPA ± bias, FlexAttention and flash-attn where installed);
#   3. the figures the open issues ask for, base preset in bf16: genome bp/s of a per-base scan against
#      a window scan (bench/dense_scan.py; the human genome in 15 minutes is 3.5 Mbp/s) and variants/s
#      (bench/variants.py; the goal, ten times SpliceAI's 25,000 an hour on a GPU, is 69/s);
#   4. bench/model.py, bench/pretrain.py and bench/scan.py with short settings;
# in that order, so that a call cut short keeps the most wanted logs; each step time-boxed, then one
# table of the steps and every benchmark's rows.
#
#   bash bench/gpu.sh --prepare   # here, once: fill bench/carry (git-ignored) with what the device lacks
#   bash bench/gpu.sh [OUT]       # there, with bench/carry carried: logs and the table under OUT
#                                 # (default $OUT, else /tmp/dnabert2-gpu)
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
  cp -r ../shared/data ../shared/official_117m_state_dict_layout.json "$carry/shared/"  # ~10 MB
  du -sh "$carry"
  exit 0
fi

out=${1:-${OUT:-/tmp/dnabert2-gpu}}
mkdir -p "$out"
: > "$out/steps.tsv"
if [ -d "$carry/wheels" ]; then
  python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$carry"/wheels/*.whl > "$out/install.log" 2>&1 ||
    echo "gpu.sh: some carried wheels did not install (see $out/install.log)" >&2
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -d ../shared/data ] || export DNABERT2_SHARED="$PWD/$carry/shared"
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/device.txt" 2>&1
python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)" \
  >> "$out/device.txt" 2>&1

# step NAME SECONDS COMMAND...: run it time-boxed, its output in OUT/NAME.log, a row in steps.tsv.
step() {
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - start))" >> "$out/steps.tsv"
}

step tests 130 python3 -m pytest -q -p no:cacheprovider tests/test_attention.py tests/test_model.py
step attention 90 python3 bench/attention.py --check --dtype bf16
step dense 80 python3 bench/dense_scan.py --workers 8 --dense 3000/150 2000/100
step variants 90 python3 bench/variants.py --genome example/ce1pct.fa.gz --annotation example/ce1pct.gff3.gz \
  --contig IV --preset base --device cuda --random-snvs 5000 --out /tmp/dnabert2-variants  # a 0.5 GB model: not under OUT
step model 50 python3 bench/model.py --shapes 256x128,64x512
step pretrain 50 python3 bench/pretrain.py --batch 128
step scan 60 python3 bench/scan.py --contigs I II --workers 8

{
  echo "# GPU check, $(date -u +%Y-%m-%d), $(head -1 "$out/device.txt")"
  tail -n +2 "$out/device.txt"
  echo
  echo "| step | exit (124: timed out) | seconds |"
  echo "|---|---|---|"
  while IFS=$'\t' read -r name rc seconds; do echo "| $name | $rc | $seconds |"; done < "$out/steps.tsv"
  echo
  tail -n 3 "$out/tests.log"
  for name in attention dense variants model pretrain scan; do
    echo
    echo "## $name"
    grep -E '^(device:|check |\|)' "$out/$name.log" || tail -n 5 "$out/$name.log"
  done
} | tee "$out/table.md"

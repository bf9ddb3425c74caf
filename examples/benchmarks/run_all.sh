#!/usr/bin/env bash
# One call on a CUDA machine: the CUDA test subset and every benchmark of `wrim bench`, Markdown to stdout.
# Each part runs under its own time limit; results also land in $OUT (default runs/bench), one file per part.
#   bash examples/benchmarks/run_all.sh            # the full set (CUDA)
#   QUICK=1 bash examples/benchmarks/run_all.sh    # the same script as a CPU smoke run (each benchmark's smallest size)
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-runs/bench}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
status=0
part() {  # part NAME SECONDS COMMAND...: run one part under a time limit, keep its output, never stop the rest
  local name=$1 limit=$2
  shift 2
  echo -e "\n## $name\n"
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.md"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "**$name exited with $rc**"; status=1; }
}

{
  echo "# wrim GPU run, $(date -u +%Y-%m-%dT%H:%MZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__)"
} | tee "$OUT/env.md"

if [ "${QUICK:-0}" = "1" ]; then
  part cuda_tests 300 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/layers
  part benchmarks 900 "$PY" -m wrim bench --quick
  exit $status
fi

part cuda_tests 150 "$PY" -m pytest -q -m cuda -p no:cacheprovider -x --timeout 120
part layers 60 "$PY" -m wrim bench layers --device cuda --dtype bfloat16 --kv-pool 1 2
part step 270 "$PY" -m wrim bench step --device cuda --batch 64 128 --compile-batch 64
part miim_parts 45 "$PY" -m wrim bench miim_parts --device cuda --batch 64
part losses 60 "$PY" -m wrim bench losses --devices cuda --batch-sizes 128 256 --loop-repeats 1
part evaluation 60 "$PY" -m wrim bench evaluation --device cuda --scales sysu,llcm,llcm-full
part profile 60 "$PY" -m wrim bench profile --device cuda --batch 64 --infer-batch 256 --rounds 2
exit $status

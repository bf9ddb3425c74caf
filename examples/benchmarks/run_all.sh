#!/usr/bin/env bash
# One call on a CUDA machine (issue 7): the CUDA test subset and every benchmark, markdown to stdout.
# Budget: under 8 minutes on one H100. Results also land in $OUT (default runs/bench) as one file per part.
#   bash examples/benchmarks/run_all.sh            # the full set
#   QUICK=1 bash examples/benchmarks/run_all.sh    # a CPU smoke run of the same script (tiny sizes)
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
  part layers 300 "$PY" examples/benchmarks/bench_layers.py --batch 4 --iters 2 --warmup 1 --sizes 64x32 --kv-pool 1 2
  part step 600 "$PY" examples/benchmarks/bench_step.py --batch 8 --sizes 64x32 --iters 2 --warmup 1 \
    --models wrimnet_resnet18 baseline_resnet18 --modes eager --infer-batch 16
  part miim_parts 300 "$PY" examples/benchmarks/bench_miim_parts.py --device cpu --model wrimnet_resnet18 \
    --size 64x32 --batch 8 --iters 1 --warmup 1
  exit $status
fi

part cuda_tests 150 "$PY" -m pytest -q -m cuda -p no:cacheprovider -x --timeout 120
part layers 60 "$PY" examples/benchmarks/bench_layers.py --device cuda --dtype bfloat16 --kv-pool 1 2
part step 270 "$PY" examples/benchmarks/bench_step.py --device cuda --batch 64 128 --compile-batch 64
part miim_parts 45 "$PY" examples/benchmarks/bench_miim_parts.py --device cuda --batch 64
part losses 60 "$PY" examples/benchmarks/bench_losses.py --devices cuda --batch-sizes 128 256 --loop-repeats 1
part eval 60 "$PY" examples/benchmarks/bench_eval.py --device cuda --scales sysu,llcm,llcm-full
exit $status

#!/usr/bin/env bash
# One prepared accelerator check: every benchmark at its accelerator size, one JSON file.
#
#   benchmarks/gpu_check.sh [OUTPUT.json]              # on a GPU host (default $OUT/gpu_check.json)
#   benchmarks/gpu_check.sh --cpu_smoke [OUTPUT.json]  # every size shrunk, on CPU, < 1 min
#   benchmarks/gpu_check.sh --cpu [OUTPUT.json]        # real shapes, CPU batches (RESULTS.md)
#
# Writes: device name, the device's measured peak (f32 / bf16 matmul FLOP/s, copy bytes/s),
# the fraction of that peak (MFU) per training size and dtype, the AVE-size explanation
# suite's seconds (402 videos x 5 explainers x 2 tests x 2 directions x 10 fractions) and the
# input pipeline's examples/s against the model's (benchmarks/gpu_check.py has the details).
# The run is limited to 8 minutes (GPU_CHECK_TIMEOUT_S, default 480).
#
# It installs nothing except, when `import stt` fails, the project itself (`pip install -e .`,
# whose dependencies are wheels). It needs jax with the accelerator's plugin already installed.
# On a machine without internet, bring the wheels along:
#   on a connected host with the same Python version and platform (manylinux x86_64):
#     pip download "jax[cuda12]==$(python -c 'import jax; print(jax.__version__)')" -e . -d wheels/
#   on the GPU host:
#     pip install --no-index --find-links wheels/ "jax[cuda12]" -e .
# PYTHON selects the interpreter (default: python3).
set -euo pipefail

smoke=0
cpu=0
out=""
for arg in "$@"; do
  case "${arg}" in
    --cpu_smoke) smoke=1 ;;
    --cpu) cpu=1 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "gpu_check.sh: unknown flag ${arg}" >&2; exit 2 ;;
    *) out="${arg}" ;;
  esac
done
if (( smoke && cpu )); then
  echo "gpu_check.sh: --cpu_smoke and --cpu exclude each other" >&2
  exit 2
fi
if [[ -z "${out}" ]]; then
  if [[ -z "${OUT:-}" ]]; then
    echo "gpu_check.sh: give the output path as an argument or set \$OUT" >&2
    exit 2
  fi
  out="${OUT}/gpu_check.json"
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
cd "${repo}"
export PYTHONPATH="${repo}${PYTHONPATH:+:${PYTHONPATH}}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
if ! "${python}" -c "import stt, jax" 2>/dev/null; then
  "${python}" -m pip install -e .
fi

args=(--out="${out}")
if (( smoke )); then
  export JAX_PLATFORMS=cpu
  # Compilation is most of a smoke run: XLA:CPU without its expensive LLVM passes compiles
  # several times faster (the smoke run's figures are not results anyway).
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
  export JAX_DISABLE_MOST_OPTIMIZATIONS=1
  args+=(--cpu_smoke)
elif (( cpu )); then
  export JAX_PLATFORMS=cpu
  args+=(--cpu)
else
  "${python}" -c "import jax, sys; sys.exit(jax.default_backend() == 'cpu')" || {
    echo "gpu_check.sh: jax sees no accelerator (jax.default_backend() is cpu);" \
         "install jax[cuda12] or run with --cpu_smoke" >&2
    exit 3
  }
fi
mkdir -p "$(dirname "${out}")"
timeout "${GPU_CHECK_TIMEOUT_S:-480}" "${python}" benchmarks/gpu_check.py "${args[@]}"
echo "gpu_check.sh: wrote ${out}" >&2

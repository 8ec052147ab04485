#!/usr/bin/env bash
# The speed issue's GPU and 16-core rows in one call, for a machine with an NVIDIA GPU and
# 16 cores (the device tool's nvidia-h200 image holds JAX with CUDA, diffrax, numpy, scipy,
# sympy, matplotlib and pandas; symengine is optional: flowsim compiles with sympy without it).
#
#   run(command="bash benchmarks/device_check.sh", timeout_s=540)          # from the repo root
#
# Optionally carry symengine as a wheel (.whl, ignored by git; see the device tool's README):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl symengine
# and add carry=[".whl"]. Writes device.txt, bench_jax.txt and scaling.txt under $OUT (or
# ./device_out); record the figures in benchmarks/RESULTS.md. Targets: flows and GD within
# 1.3x of hand-written diffrax and lax.scan on the GPU; 16 workers >= 12x one worker.
set -o pipefail
OUT=${OUT:-device_out}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export FLOWSIM_JAX_CACHE=/tmp/flowsim_jax_cache
{
    nvidia-smi -L 2>&1; nproc
    python3 -c "import jax, diffrax, flowsim; print('jax', jax.__version__, jax.devices(),
'diffrax', diffrax.__version__, 'flowsim', flowsim.__version__)"
} 2>&1 | tee "$OUT/device.txt"
# GPU: flows (diffrax) and GD (lax.scan) against hand-written JAX, 1e5 and 1e6 starts
timeout 330 python3 benchmarks/bench_jax.py --starts 100000 1000000 2>&1 | tee "$OUT/bench_jax.txt"
# 16 cores: workers=k against one process, 100,000 starts of the explicit engine
timeout 180 python3 benchmarks/bench_ensemble.py --scaling 2>&1 | tee "$OUT/scaling.txt"

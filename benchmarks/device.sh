#!/usr/bin/env bash
# The accelerator run, prepared to finish in under five minutes on one lent GPU (or TPU host).
#
#   bash benchmarks/device.sh            # from the repository root; JSON goes to $OUT
#   QUICK=1 bash benchmarks/device.sh    # tiny sizes: checks the script itself (any machine;
#                                        # no pip install unless INSTALL=1)
#
# Stages, each under its own time limit so one slow stage cannot eat the others:
#   1. targets.json   the two issue targets, per Hedge step inside one jitted scan:
#                     m = n = 10^4, k = 8 (each ranking engine), and 4096 prompts x 64 users x
#                     16 responses, k = 4 (benchmarks/suite.py's timing helpers);      <= 100 s
#   2. suite.json     python benchmarks/suite.py --skip-scripts (throughput, batched prompts,
#                     sharded prompts, dense and NumPy comparisons);                   <= 140 s
#   3. training.json  benchmarks/training.py (sample_rewards), when that script exists; <= 45 s
# plus device.txt (nvidia-smi / jax.devices()). A stage that fails or times out is recorded in
# status.json and the next one still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/device}"
mkdir -p "$OUT"
QUICK="${QUICK:-0}"
status="{"

stage() {  # stage NAME SECONDS COMMAND...: run, record the exit code (124 = timed out)
    local name="$1" limit="$2"
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local code=$?
    status="$status\"$name\": {\"exit_code\": $code, \"seconds\": $((SECONDS - start))}, "
    echo "stage $name: exit $code after $((SECONDS - start)) s" >&2
}

if [ "${INSTALL:-$([ "$QUICK" = 1 ] && echo 0 || echo 1)}" = 1 ]; then
    pip install -e . --no-deps -q >"$OUT/pip.log" 2>&1
fi
(nvidia-smi 2>&1 || true; python -c "import jax; print(jax.__version__, jax.devices())") \
    >"$OUT/device.txt" 2>&1

stage targets 100 python - "$OUT/targets.json" "$QUICK" <<'EOF'
import datetime, json, sys

import jax

sys.path.insert(0, "benchmarks")
import suite  # noqa: E402

import ualign_jax as ua  # noqa: E402

path, quick = sys.argv[1], sys.argv[2] == "1"
m = n = 300 if quick else 10_000
prompts = 64 if quick else 4096
steps = 10 if quick else 100
rows = []
big = ua.RankingPopulation(suite.random_rankings((m, n)))
for engine in ("parallel", "scan"):
    ua.payoffs.RANKING_ENGINE = engine  # read when a fresh program is traced (seconds_per_step)
    ms = 1e3 * suite.seconds_per_step(big, 8, steps)
    rows.append({"case": f"m={m} n={n} k=8", "engine": engine, "ms_per_step": ms})
    print(rows[-1], file=sys.stderr, flush=True)
ua.payoffs.RANKING_ENGINE = "auto"
batch = ua.RankingPopulation(suite.random_rankings((prompts, 64, 16), seed=prompts))
ms = 1e3 * suite.seconds_per_step(batch, 4, steps)
rows.append({"case": f"{prompts} prompts x 64 x 16, k=4", "engine": "auto", "ms_per_step": ms})
result = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "device": f"{jax.devices()[0].device_kind} ({jax.default_backend()}, "
    f"{jax.device_count()} device(s))",
    "jax": jax.__version__,
    "quick": quick,
    "steps_per_timing": steps,
    "targets_ms_per_step": suite.TARGETS_MS,
    "rows": rows,
}
with open(path, "w") as f:
    json.dump(result, f, indent=2)
EOF

suite_args=(--skip-scripts)
[ "$QUICK" = 1 ] && suite_args+=(--quick)
stage suite 140 python benchmarks/suite.py "${suite_args[@]}"
for f in suite.json suite.png suite_quick.json suite_quick.png; do
    [ -f "benchmarks/results/$f" ] && cp "benchmarks/results/$f" "$OUT/"
done

if [ -f benchmarks/training.py ]; then
    training_args=()
    [ "$QUICK" = 1 ] && training_args+=(--quick)
    stage training 45 python benchmarks/training.py "${training_args[@]}"
    for f in training.json training_quick.json; do
        [ -f "benchmarks/results/$f" ] && cp "benchmarks/results/$f" "$OUT/"
    done
else
    status="$status\"training\": \"benchmarks/training.py absent\", "
fi

echo "${status%, }}" >"$OUT/status.json"
cat "$OUT/status.json"

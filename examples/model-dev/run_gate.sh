#!/usr/bin/env bash
# The example's CI gate, run here as its workflow runs it (.github/workflows/ci.yml): build the
# pto-checks wheel, install it and this example package into a fresh virtualenv, then
#   0. gate:   the committed checkpoint on the committed pto-baseline.json passes (exit 0),
#   1. accept: the gate command with --update-baseline writes pto-baseline.json (exit 0),
#   2. gate:   the same checkpoint against that baseline passes (exit 0),
#   3. a regressed checkpoint (checkpoints/regressed.json: lattice 4 % short) fails the gate (exit 1).
# The dependencies come from an existing environment through a .pth line (nothing is downloaded).
# Usage: bash examples/model-dev/run_gate.sh [PYTHON]   (default: .venv/bin/python of the checkout;
# PTO_EXAMPLE_BASELINE_OUT=FILE keeps the accepted baseline)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
py_in=${1:-$repo/.venv/bin/python}
PY=$(cd "$(dirname "$py_in")" && pwd)/$(basename "$py_in")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
isolation=$("$PY" -c "import hatchling" 2>/dev/null && echo --no-build-isolation || true)

echo "== build the pto-checks wheel; a fresh venv with it and the example package"
"$PY" -m pip wheel --no-deps $isolation -q "$repo" -w "$work/dist"
"$PY" -m venv "$work/venv"
"$PY" -c "import site; print(site.getsitepackages()[0])" \
    > "$("$work/venv/bin/python" -c "import site; print(site.getsitepackages()[0])")/deps.pth"
cp -r "$here" "$work/example"   # the developer's repository (a copy: the checkpoint gets replaced)
cd "$work/example"
install() { "$work/venv/bin/pip" install -q --no-deps --force-reinstall $isolation "$work"/dist/pto_checks-*.whl .; }
install
export PATH="$work/venv/bin:$PATH"

# the workflow's gate step, verbatim
gate=$(python - <<'PY'
import yaml
steps = yaml.safe_load(open(".github/workflows/ci.yml"))["jobs"]["gate"]["steps"]
print(next(s["run"] for s in steps if s.get("name") == "gate").strip())
PY
)
echo "   gate command: $gate"
run() { set +e; bash -c "$1"; rc=$?; set -e; echo "   exit $rc"; }

echo "== 0. gate the committed checkpoint on the committed baseline (the workflow on a push)"
run "$gate"
[ "$rc" -eq 0 ] || { echo "the committed pto-baseline.json no longer passes; regenerate it:" \
    "PTO_EXAMPLE_BASELINE_OUT=examples/model-dev/pto-baseline.json bash examples/model-dev/run_gate.sh"; \
    [ -n "${PTO_EXAMPLE_BASELINE_OUT:-}" ] || exit 1; }
echo "== 1. accept the current checkpoint"
rm -f pto-baseline.json
run "$gate --update-baseline"
[ "$rc" -eq 0 ] && [ -f pto-baseline.json ] || { echo "accept failed"; exit 1; }
# the example's committed baseline is this file: PTO_EXAMPLE_BASELINE_OUT=examples/model-dev/pto-baseline.json
if [ -n "${PTO_EXAMPLE_BASELINE_OUT:-}" ]; then cp pto-baseline.json "$PTO_EXAMPLE_BASELINE_OUT"; fi
echo "== 2. gate the same checkpoint: passes"
run "$gate"
[ "$rc" -eq 0 ] || { echo "the gate failed on the accepted checkpoint"; exit 1; }
echo "== 3. a regressed checkpoint: the gate fails"
cp checkpoints/regressed.json src/pto_example_model/checkpoint.json
install
run "$gate"
[ "$rc" -eq 1 ] || { echo "the gate did not fail on the regressed checkpoint (exit $rc)"; exit 1; }
grep -q 'test_lattice_a_vs_experiment' pto-report/junit.xml
echo "model-dev gate OK: accepted, passed, regression caught"

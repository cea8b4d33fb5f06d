#!/usr/bin/env bash
# The package as model developers install it: build the wheel, install it alone into a fresh venv
# (its dependencies come from the project's .venv through a .pth line, so nothing is downloaded), and
# run the shipped checks from an empty folder, with pytest --pyargs and with pto-checks run.
# Usage: bash scripts/check_wheel.sh [PYTHON]   (PYTHON: the interpreter whose packages are reused,
# default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(cd "$(dirname "${1:-.venv/bin/python}")" && pwd)/$(basename "${1:-.venv/bin/python}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# hatchling from the environment where it is there (offline), else pip's isolated build fetches it
isolation=$("$PY" -c "import hatchling" 2>/dev/null && echo --no-build-isolation || true)
"$PY" -m pip wheel --no-deps $isolation -q . -w "$work/dist"
"$PY" -m venv "$work/venv"
"$PY" -c "import site; print(site.getsitepackages()[0])" \
    > "$("$work/venv/bin/python" -c "import site; print(site.getsitepackages()[0])")/deps.pth"
"$work/venv/bin/pip" install -q --no-deps "$work"/dist/pto_checks-*.whl

mkdir "$work/empty" && cd "$work/empty"
where=$("$work/venv/bin/python" -c "import pto_checks; print(pto_checks.__file__)")
case "$where" in "$work/venv/"*) ;; *) echo "pto_checks imported from $where, not the wheel"; exit 1;; esac
printf '[models.my-model]\nfamily = "ase"\nfunctional = "PBEsol"\n[models.my-model.options]\n%s\n%s\n' \
    'factory = "pto_checks.models.synthetic:make"' 'kwargs = { variant = "good" }' > models.toml

echo "== pytest --pyargs pto_checks.checks -m static --model-file models.toml (installed wheel, empty folder)"
"$work/venv/bin/python" -m pytest --pyargs pto_checks.checks -m static --model-file models.toml \
    -p no:cacheprovider --pto-cache cache --report out -q
"$work/venv/bin/pto-checks" verify out/results.json

echo "== pto-checks run -m static --model synthetic:compressed: a failed verdict is exit 1"
set +e
"$work/venv/bin/pto-checks" run --cache cache -m static --model synthetic:compressed -q
rc=$?
set -e
[ "$rc" -eq 1 ] || { echo "pto-checks run exited $rc, expected 1 (one failed verdict)"; exit 1; }
echo "wheel OK"

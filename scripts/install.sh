#!/usr/bin/env bash
# Install pto-checks and model families into virtual environments.
#
#   bash scripts/install.sh [FAMILY ...]      FAMILY: chgnet sevennet orb mace deepmd m3gnet gptff
#                                             deepmd-tf mace-legacy, or all (= every one but
#                                             mace-legacy); default: chgnet sevennet
# (the lists come from the family records: python3 pto_checks/models/families.py --install-plan)
#
# .venv              harness + chgnet, sevennet, orb, mace, deepmd (.pth) (one environment; see README)
# .venv-m3gnet       harness + M3GNet on matgl's DGL backend (needs an older torch: its own environment)
# .venv-gptff        harness + GPTFF (GPTFF pins ase < 3.29)
# .venv-deepmd-tf    harness + deepmd-kit's TensorFlow backend (frozen .pb models, e.g. UniPero); no torch
# .venv-mace-legacy  mace-torch with the e3nn 0.4.4 it pins (torch 2.5.1, a CUDA build on PyPI: about
#                    5 GB); optional: the .venv's mace adapter converts such files itself (README, "MACE")
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
eval "$($PY pto_checks/models/families.py --install-plan)"  # TARGETS ALL MAIN MAIN_EXTRAS
families=("$@")
[ ${#families[@]} -eq 0 ] && families=(chgnet sevennet)
[ "${families[*]}" = "all" ] && read -ra families <<< "$ALL"
for f in "${families[@]}"; do
  case " $TARGETS " in *" $f "*) ;; *) echo "install.sh: unknown family '$f'; known: $TARGETS, all" >&2; exit 2;; esac
done
has() { for f in "${families[@]}"; do [ "$f" = "$1" ] && return 0; done; return 1; }
has_any() { for f in "$@"; do has "$f" && return 0; done; return 1; }
t0=$(date +%s)
took() { echo "[install.sh] $1: $(( $(date +%s) - t0 )) s, $(du -sh "$2" | cut -f1)"; t0=$(date +%s); }

main_extras=test,cluster  # cluster: Dask + dask-jobqueue (--executor dask, --cluster)
for f in $MAIN_EXTRAS; do has "$f" && main_extras="$main_extras,$f"; done

# shellcheck disable=SC2086
if has_any $MAIN; then
  [ -d .venv ] || $PY -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/pip install -c constraints/cpu.txt -e ".[$main_extras]"
  if has mace; then
    # mace-torch pins e3nn==0.4.4 but runs on the e3nn 0.6 that sevenn needs: the extra "mace" holds
    # its other dependencies and e3nn>=0.5.9; mace-torch itself goes in without its pin (the README's pip route)
    .venv/bin/pip install --no-deps "mace-torch==0.3.16"
    # TorchSim: MACE's device-side interface for the batched MD engine (extra "batched"), and vesin
    .venv/bin/pip install -c constraints/cpu.txt "torch-sim-atomistic>=0.3" "vesin[torch]>=0.3"
  fi
  if has deepmd; then
    # The PyPI wheel's op library is built for another torch: build deepmd-kit against ours (~2 min).
    .venv/bin/pip install -c constraints/cpu.txt setuptools_scm hatch-fancy-pypi-readme \
      scikit-build-core "cmake>=3.25.2" ninja dependency_groups "vesin[torch]" "e3nn>=0.5.9"
    DP_ENABLE_TENSORFLOW=0 DP_ENABLE_PYTORCH=1 DP_VARIANT=cpu CMAKE_BUILD_PARALLEL_LEVEL=2 \
      .venv/bin/pip install -c constraints/cpu.txt --no-build-isolation --no-binary deepmd-kit deepmd-kit==3.2.0
  fi
  took ".venv" .venv
fi
if has m3gnet; then
  [ -d .venv-m3gnet ] || $PY -m venv .venv-m3gnet
  .venv-m3gnet/bin/python -m pip install -q --upgrade pip
  .venv-m3gnet/bin/pip install -c constraints/m3gnet-dgl.txt torch dgl matgl ase numpy pandas scipy \
    pymatgen phonopy pytest hypothesis "pymbar>=4"
  .venv-m3gnet/bin/pip install -c constraints/m3gnet-dgl.txt --no-deps -e .
  took ".venv-m3gnet" .venv-m3gnet
fi
if has gptff; then
  # GPTFF is not on PyPI: from its source repository (the archive in ../shared/packages where present)
  src=${GPTFF_SOURCE:-}
  if [ -z "$src" ]; then
    src="git+https://github.com/atomly-materials-research-lab/GPTFF@c850738"
    for f in ../shared/packages/gptff-1.0.1-src-c850738.tar.gz shared/packages/gptff-1.0.1-src-c850738.tar.gz; do
      [ -f "$f" ] && src=$f && break
    done
  fi
  [ -d .venv-gptff ] || $PY -m venv .venv-gptff
  .venv-gptff/bin/python -m pip install -q --upgrade pip
  .venv-gptff/bin/pip install -c constraints/gptff.txt torch "$src" -e ".[test]"
  took ".venv-gptff" .venv-gptff
fi
if has deepmd-tf; then
  [ -d .venv-deepmd-tf ] || $PY -m venv .venv-deepmd-tf
  .venv-deepmd-tf/bin/python -m pip install -q --upgrade pip
  .venv-deepmd-tf/bin/pip install -c constraints/deepmd-tf.txt "deepmd-kit[cpu]" -e ".[test]"
  took ".venv-deepmd-tf" .venv-deepmd-tf
fi
if has mace-legacy; then
  [ -d .venv-mace-legacy ] || $PY -m venv .venv-mace-legacy
  .venv-mace-legacy/bin/python -m pip install -q --upgrade pip
  .venv-mace-legacy/bin/pip install -c constraints/mace-legacy.txt torch e3nn mace-torch -e ".[test]"
  took ".venv-mace-legacy" .venv-mace-legacy
fi
echo "pto-checks installed: families ${families[*]}"

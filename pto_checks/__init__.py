"""pto-checks: can a universal ML force field be trusted for finite-temperature MD of PbTiO3?

Data flows structure -> model -> simulation -> observables -> verdict -> report:

- :mod:`pto_checks.structures`  PTO cells and supercells (Angstrom)
- :mod:`pto_checks.models`      registry of models; adapters return plain ASE calculators
- :mod:`pto_checks.relax`       0 K variable-cell relaxation
- :mod:`pto_checks.phonons`     phonopy finite-displacement phonons
- :mod:`pto_checks.analysis`    observables (lattice, long axis, sanity metrics)
- :mod:`pto_checks.verdicts`    measured value + reference + tolerance -> verdict
- :mod:`pto_checks.cache`       on-disk, atomic, lock-protected cache of expensive stages
- :mod:`pto_checks.results`     the ``results.json`` file
- :mod:`pto_checks.pytest_plugin` pytest options, fixtures and markers
"""

__version__ = "0.1.0"

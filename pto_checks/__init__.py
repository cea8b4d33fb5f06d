"""pto-checks: can a universal ML force field be trusted for finite-temperature MD of PbTiO3?

Data flows structure -> model -> simulation -> observables -> verdict -> report:

- :mod:`pto_checks.structures`  PTO cells and supercells (Angstrom)
- :mod:`pto_checks.models`      registry of models; adapters return plain ASE calculators; one
  record per family in :mod:`pto_checks.models.families`, the adapter interface in
  :mod:`pto_checks.models.adapter`
- :mod:`pto_checks.relax`       0 K variable-cell relaxation
- :mod:`pto_checks.phonons`     phonopy finite-displacement phonons
- :mod:`pto_checks.md`          MD engine interface and the ASE engine (NPT/NVT, checkpoints)
- :mod:`pto_checks.protocols`   paper / quick / smoke protocols and overrides
- :mod:`pto_checks.stages`      the cached pipeline tying the stages together
- :mod:`pto_checks.analysis`    observables (lattice, polarization, order, phases, Tc)
- :mod:`pto_checks.verdicts`    measured value + reference + tolerance -> verdict
- :mod:`pto_checks.cache`       on-disk, atomic, lock-protected cache of expensive stages
- :mod:`pto_checks.results`     the ``results.json`` file
- :mod:`pto_checks.report`      figures, HTML/Markdown reports, comparisons
- :mod:`pto_checks.pytest_plugin` pytest options, fixtures and markers (:mod:`pto_checks.plugin`)
- :mod:`pto_checks.checks`      the physical checks, pytest files (``pytest --pyargs pto_checks.checks``)
- :mod:`pto_checks.cli`         the ``pto-checks`` command
"""

__version__ = "0.1.0"

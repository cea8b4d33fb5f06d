"""The physical checks of pto-checks, one module per family (sanity, static, phonons, dynamic,
engines, accuracy, regression, speed): ``pytest --pyargs pto_checks.checks --model NAME``.

These modules are pytest test files; their verdict rules live in :mod:`pto_checks.verdicts` and their
reference values in ``pto_checks/reference_data``.
"""

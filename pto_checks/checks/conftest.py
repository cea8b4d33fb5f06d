"""conftest of the shipped check files: Agg backend (the checks write figures, never show them).
The markers are registered by the pto-checks plugin (pto_checks/markers.py, the one list)."""

import matplotlib

matplotlib.use("Agg")

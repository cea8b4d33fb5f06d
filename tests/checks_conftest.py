"""conftest of the check files shipped in the wheel (pto_checks/checks/): Agg backend.  The markers
are registered by the pto-checks plugin (pto_checks/markers.py, the one list)."""

import matplotlib

matplotlib.use("Agg")

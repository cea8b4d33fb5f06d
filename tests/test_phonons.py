"""Phonon checks (marker ``phonon``): phonopy, 2x2x2 supercell of the relaxed tetragonal cell,
path G-X-M-G-Z-R-A-Z plus a q-mesh.  A sound model has no imaginary modes."""

import pytest

from pto_checks import verdicts

pytestmark = pytest.mark.phonon


def test_no_imaginary_modes(model, phonon_bands, check):
    """No imaginary phonon on the path or mesh (interpolated acoustic dips near Gamma reported only)."""
    check(verdicts.no_imaginary_modes(phonon_bands["f_min_thz"], phonon_bands["q_min"],
                                      phonon_bands["f_min_all_thz"], phonon_bands["q_min_all"],
                                      model.spec.functional))

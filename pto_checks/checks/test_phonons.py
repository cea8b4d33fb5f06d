"""Phonon checks (marker ``phonon``): phonopy on the relaxed P4mm cell (symmetry held), path
G-X-M-G-Z-R-A-Z, an 8x8x8 mesh and the supercell's commensurate q; 2x2x2 supercell, escalated to
3x3x3 and 4x4x4 only while every frequency below the threshold is interpolated.  A sound model has
no imaginary modes."""

import pytest

from pto_checks import verdicts

pytestmark = pytest.mark.phonon


def test_no_imaginary_modes(model, phonon_bands, check):
    """Every branch at every q >= 0 THz (acoustic modes at Gamma >= -0.01 THz); the message says
    which supercell decided and whether the frequency is exact or interpolated."""
    check(verdicts.no_imaginary_modes(phonon_bands, model.spec.functional))

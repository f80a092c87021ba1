"""Per-DIT angles of SPHERE raw files (hcdc.instruments.sphere.angles, shared by IRDIS and IFS):
the IFS instrument offset, the real IFS headers' TEL PARANG START/END, the derotator modes."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.angles import dit_angles
from hcdc.science.calibration import timing

from .conftest import SCIENCE_FILES, edited, eso


@pytest.mark.shared_data
@pytest.mark.parametrize("name", SCIENCE_FILES)
def test_real_ifs_headers(real_headers, name) -> None:
    h = real_headers[name]
    ndit = h[eso("DET NDIT")]
    angles = dit_angles(h, ndit, arm="IFS", name=name)
    # per-DIT parallactic angles bracket the header's start/end values (mid-DIT vs ends)
    t = sc.read_timing(h)
    start, _, end = timing.dit_times(t.date_obs, t.fram_utc, ndit, t.dit, t.ditdelay)
    ra, dec = sc.read_pointing(h)
    ends = (
        timing.parallactic_angle(start[:1], ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)[0],
        (timing.parallactic_angle(end[-1:], ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)[0]),
    )
    assert ends[0] == pytest.approx(h[eso("TEL PARANG START")], abs=0.015)
    assert ends[1] == pytest.approx(h[eso("TEL PARANG END")], abs=0.015)
    assert np.all(np.diff(angles["parang"]) * np.sign(ends[1] - ends[0]) > 0)
    # IFS, pupil tracking: parang + 135.99 - 100.48 - 1.75 (vlt-sphere)
    np.testing.assert_allclose(angles["derot"] - angles["parang"], 135.99 - 100.48 - 1.75)
    irdis = dit_angles(h, ndit, arm="IRDIS")
    np.testing.assert_allclose(irdis["derot"] - irdis["parang"], 135.99 - 1.75)


@pytest.mark.shared_data
def test_modes_and_errors(real_headers) -> None:
    h = real_headers[SCIENCE_FILES[1]]
    stat = dit_angles(edited(h, {"INS4 DROT2 MODE": "STAT"}), 8, arm="IFS")
    np.testing.assert_allclose(stat["derot"] - stat["parang"], -100.48 - 100.48 - 1.75)
    sky = dit_angles(edited(h, {"INS4 DROT2 MODE": "SKY", "INS4 DROT2 POSANG": 30.0}), 8, arm="IFS")
    np.testing.assert_allclose(sky["derot"] - sky["parang"], -100.48 + 30.0 - 100.48 - 1.75)
    with pytest.raises(ValueError, match="x.fits: unsupported INS4 DROT2 MODE 'OFF'"):
        dit_angles(edited(h, {"INS4 DROT2 MODE": "OFF"}), 8, arm="IFS", name="x.fits")
    with pytest.raises(ValueError, match="x.fits: .*INS4 DROT2 RA"):
        dit_angles(edited(h, {}, remove=("INS4 DROT2 RA",)), 8, arm="IFS", name="x.fits")
    with pytest.raises(ValueError, match="no instrument offset for arm 'ZIMPOL'"):
        dit_angles(h, 8, arm="ZIMPOL")
    assert isinstance(h, fits.Header)

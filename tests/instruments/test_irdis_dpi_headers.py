"""IRDIS DPI header helpers: classification and HWP position, on real and hand-made headers."""

from __future__ import annotations

import pytest
from astropy.io import fits

from hcdc.instruments.eso_headers import read_header_text
from hcdc.instruments.sphere.irdis.dpi import is_dpi, read_hwp_angle, read_hwp_position
from hcdc.science.polarimetry import group_hwp_cycles


def _header(**cards):
    h = fits.Header()
    for key, value in cards.items():
        h[f"HIERARCH ESO {key.replace('_', ' ')}"] = value
    return h


@pytest.mark.shared_data
def test_real_headers_are_not_dpi_and_their_parked_hwp_is_qplus(shared_data):
    paths = sorted((shared_data / "sphere_headers").glob("*.hdr.txt"))
    headers = [read_header_text(p) for p in paths]
    assert len(headers) >= 8
    assert not any(is_dpi(h) for h in headers)  # IRDIFS / IFU / WAVE,LAMP, no polarimetry
    with_hwp = [(p, h) for p, h in zip(paths, headers, strict=True) if read_hwp_angle(h) is not None]
    assert len(with_hwp) == 8
    for path, h in with_hwp:
        assert read_hwp_angle(h) == pytest.approx(0.0, abs=1e-6)
        assert read_hwp_position(h, path) == "Qplus"


def test_is_dpi_from_technique_or_mode():
    assert is_dpi(_header(DPR_TECH="POLARIMETRY,CORONOGRAPHY"))
    assert is_dpi(_header(INS1_MODE="DPI"))
    assert not is_dpi(_header(DPR_TECH="IMAGE,DUAL,CORONOGRAPHY", INS1_MODE="NIROBS"))
    assert not is_dpi(fits.Header())


@pytest.mark.parametrize(
    ("stokes", "encoder"), [("Qplus", 152.15), ("Qminus", 197.15), ("Uplus", 174.65), ("Uminus", 219.65)]
)
def test_hwp_position_from_keyword_and_encoder(stokes, encoder):
    assert read_hwp_position(_header(OCS_DPI_H2RT_STOKES=stokes, INS4_DROT3_BEGIN=encoder)) == stokes
    assert read_hwp_position(_header(INS4_DROT3_START=encoder)) == stokes  # keyword renamed in 2021
    assert read_hwp_position(_header(OCS_DPI_H2RT_STOKES=stokes)) == stokes


def test_hwp_position_errors_name_the_file_and_reason():
    with pytest.raises(
        ValueError, match=r"f\.fits: OCS DPI H2RT STOKES = 'Qplus' but the HWP encoder says 'Uplus'"
    ):
        read_hwp_position(_header(OCS_DPI_H2RT_STOKES="Qplus", INS4_DROT3_BEGIN=174.65), "f.fits")
    with pytest.raises(ValueError, match=r"f\.fits: .*not one of"):
        read_hwp_position(_header(OCS_DPI_H2RT_STOKES="Vplus"), "f.fits")
    with pytest.raises(ValueError, match=r"f\.fits: HWP angle 10\.000 deg"):
        read_hwp_position(_header(INS4_DROT3_BEGIN=162.15), "f.fits")
    with pytest.raises(ValueError, match=r"f\.fits: no HWP position"):
        read_hwp_position(fits.Header(), "f.fits")


def test_group_hwp_cycles_keeps_complete_cycles_and_drops_broken_ones():
    q, qm, u, um = "Qplus", "Qminus", "Uplus", "Uminus"
    groups = group_hwp_cycles([q, qm, u, um, q, qm, u, q, qm, u, um, um])
    assert groups.cycles == [(0, 1, 2, 3), (7, 8, 9, 10)]
    assert groups.dropped == [4, 5, 6, 11]
    assert group_hwp_cycles([]).cycles == []
    with pytest.raises(ValueError, match="frame 1: unknown HWP label 'Vplus'"):
        group_hwp_cycles([q, "Vplus"])

"""The Level 3 companion spectra file of ``l3-companion-spectra`` 1.3: the SPECTRUM table's BIAS
column (the injection-recovery bias subtracted per channel) and a primary header written without
astropy's VerifyWarning (a card too long for 80 characters, comment truncated), even for long
Level 2 parameters and input names; 1.2's file keeps its columns. The whole recipe on a simulated
IFS night, on SQLite and PostgreSQL: tests/pipeline/test_ifs_workflow.py."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning

from hcdc.pipeline.recipes.companion_spectra import METHOD_NEGFC, CompanionSpectraParameters, _write
from hcdc.science.postprocessing.products import Detection
from hcdc.science.postprocessing.spectrum_negfc import NegfcSpectrum


def _spectrum(bias: np.ndarray | None) -> NegfcSpectrum:
    wl = np.linspace(0.96, 1.35, 39)
    return NegfcSpectrum(
        wavelengths_um=wl,
        contrast=np.full(39, 1e-4),
        contrast_err=np.full(39, 1e-5),
        flux=np.full(39, 10.0),
        separation_px=24.1,
        pa_deg=120.0,
        trial_pas_deg=np.linspace(150.0, 450.0, 8) % 360,
        trial_errors=np.zeros((8, 39)),
        n_evaluations=130,
        steps=3,
        bias=bias,
    )


def _write_file(tmp_path: Path, bias_column: bool, name: str) -> Path:
    level2 = SimpleNamespace(
        algorithm="asdi",
        # the IFS workflow's Level 2 parameters: their JSON (46 characters) fits one card, with
        # its comment it does not (a plain header assignment truncates the comment and warns)
        params={"mode": "single", "ncomp": 5, "mask_center_px": 9},
        pixel_scale_mas=7.46,
    )
    det = Detection(x=80.0, y=95.0, separation_px=24.1, pa_deg=120.0, snr=25.0)
    inputs = {
        "level1": tmp_path / ("level1_" + "a" * 60 + ".fits"),
        "level2": tmp_path / ("level2_" + "b" * 60 + ".fits"),
    }
    bias = np.linspace(-2e-6, 2e-6, 39)
    with warnings.catch_warnings():
        warnings.simplefilter("error", VerifyWarning)
        return _write(
            tmp_path / name,
            level2,
            [det],
            [_spectrum(bias)],
            CompanionSpectraParameters(),
            inputs,
            METHOD_NEGFC,
            bias_column=bias_column,
        )


def test_a_plain_params_card_would_warn() -> None:
    """What the file test guards against: the same card by plain assignment truncates."""
    import pytest

    with pytest.warns(VerifyWarning, match="too long"):
        header = fits.Header()
        header["PARAMS"] = (
            '{"mask_center_px":9,"mode":"single","ncomp":5}',
            "Level 2 algorithm parameters, JSON",
        )
        header.tostring()


def test_1_3_file_has_the_bias_column_and_no_truncated_card(tmp_path: Path) -> None:
    path = _write_file(tmp_path, True, "new.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("error", VerifyWarning)
        with fits.open(path) as hdul:
            header = hdul[0].header
            header.tostring()  # every card formatted: no truncation anywhere
            assert header["PARAMS"] == '{"mask_center_px":9,"mode":"single","ncomp":5}'
            assert "Level 2 algorithm parameters, JSON" in header.tostring()
            assert header["LEVEL1"].endswith("a" * 60 + ".fits")
            table = hdul["SPECTRUM"].data
            np.testing.assert_allclose(table["BIAS"], np.linspace(-2e-6, 2e-6, 39))
            assert table.columns.names[-1] == "BIAS"


def test_1_2_file_keeps_its_columns(tmp_path: Path) -> None:
    path = _write_file(tmp_path, False, "old.fits")
    with fits.open(path) as hdul:
        assert hdul["SPECTRUM"].columns.names == [
            "ID",
            "WAVELENGTH",
            "CONTRAST",
            "CONTRAST_ERR",
            "SNR",
            "THROUGHPUT",
        ]

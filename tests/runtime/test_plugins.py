"""The walk-throughs of docs/extending.md: a plugin package (a module + an installed
distribution's entry points) adds an instrument and an algorithm to hcdc."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from astropy.io import fits

from hcdc.instruments import registry
from hcdc.pipeline.registry import run_recipe
from hcdc.runtime import plugins
from hcdc.science import postprocessing
from hcdc.science.postprocessing.base import ALGORITHMS
from hcdc.science.postprocessing.run import postprocess

INSTRUMENT = """
from typing import ClassVar
import numpy as np
from astropy.io import fits
from hcdc.instruments.base import FileMetadata, Instrument, Level1Cube, night_of
from hcdc.instruments.eso import _float, _str, observation_time
from hcdc.instruments.registry import register

@register
class ToyScope(Instrument):
    name: ClassVar[str] = "TOYSCOPE"
    priority: ClassVar[int] = 50

    def identify(self, header, hdul):
        return str(header.get("INSTRUME", "")).strip() == "TOYSCOPE"

    def extract(self, header, hdul, values=None):
        meta = FileMetadata(instrument="TOYSCOPE", file_class="SCIENCE", arm="CAM")
        meta.date_obs, meta.mjd_obs = observation_time(header)
        meta.night = night_of(meta.date_obs)
        meta.target = _str(header.get("OBJECT") or "")
        meta.dit = _float(header.get("EXPTIME"))
        return meta

    def read_level1(self, path):
        # its Level 1 product: one FITS file, the cube (frames, y, x) with a DEROT extension
        if path.suffix != ".fits" or not path.is_file() or fits.getval(path, "INSTRUME") != "TOYSCOPE":
            return None
        with fits.open(path) as hdul:
            cube, derot = hdul[0].data[None].astype(np.float32), hdul["DEROT"].data.astype(float)
            header = hdul[0].header.copy()
        return Level1Cube(cube, None, derot, np.array([2.2]), 27.2, "ADU/s", header)
"""

ALGORITHM = '''
import numpy as np
from hcdc.science.postprocessing.base import check_adi_inputs, derotate_and_collapse, register_algorithm

@register_algorithm("toy_median_adi")
def toy_median_adi(cube, angles, *, fwhm):
    """Classical ADI: subtract the median frame, derotate, take the median."""
    cube, angles = check_adi_inputs(cube, angles, fwhm)
    return derotate_and_collapse(cube - np.median(cube, axis=0), angles, collapse="median")
'''


def _install(site, name: str, modules: dict[str, str], entry_points: str) -> None:
    """A package and its ``*.dist-info`` (METADATA + entry_points.txt) under ``site``."""
    package = site / "toyscope_hcdc"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    for module, text in modules.items():
        (package / f"{module}.py").write_text(textwrap.dedent(text))
    dist = site / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fresh ``site-packages`` on sys.path; the registries are restored afterwards."""
    registry.instruments()  # hcdc's own instruments loaded before the plugin exists
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_REGISTRY", list(registry._REGISTRY))
    monkeypatch.setattr(plugins, "_loaded", set(plugins._loaded))
    before = set(ALGORITHMS)
    yield tmp_path
    for name in set(ALGORITHMS) - before:
        del ALGORITHMS[name]
    for module in [m for m in sys.modules if m.startswith("toyscope_hcdc")]:
        del sys.modules[module]


def test_a_plugin_adds_an_instrument_and_an_algorithm(site, tmp_path):
    _install(
        site,
        "toyscope-hcdc",
        {"instrument": INSTRUMENT, "algorithm": ALGORITHM},
        """
        [hcdc.instruments]
        toyscope = toyscope_hcdc.instrument

        [hcdc.algorithms]
        toy_median_adi = toyscope_hcdc.algorithm
        """,
    )
    path = tmp_path / "toy.fits"
    header = fits.Header({"INSTRUME": "TOYSCOPE", "DATE-OBS": "2024-05-01T03:00:00", "OBJECT": "HD 1"})
    header["EXPTIME"] = 2.5
    fits.PrimaryHDU(np.zeros((4, 4), np.float32), header).writeto(path)
    assert registry.read_file(path)[0].instrument == "UNKNOWN"  # not installed yet: generic

    assert registry.load_plugins() == ["toyscope_hcdc.instrument"]
    meta, _ = registry.read_file(path)
    assert (meta.instrument, meta.arm, meta.target, meta.dit) == ("TOYSCOPE", "CAM", "HD 1", 2.5)
    assert "TOYSCOPE" in registry.instrument_names()

    assert postprocessing.load_plugins() == ["toyscope_hcdc.algorithm"]
    rng = np.random.default_rng(1)
    cube = rng.normal(0.0, 1.0, (8, 33, 33)).astype(np.float32)
    angles = np.linspace(0.0, 40.0, 8)
    result = postprocess(cube, angles, algorithm="toy_median_adi", fwhm=4.0, compute_contrast=False)
    assert result.image.shape == (33, 33)
    assert np.isfinite(result.image).any()

    # Its Level 1 product goes through the l2-postprocess recipe with ToyScope's plate scale.
    level1 = tmp_path / "toy_l1.fits"
    fits.HDUList(
        [fits.PrimaryHDU(cube, fits.Header({"INSTRUME": "TOYSCOPE"})), fits.ImageHDU(angles, name="DEROT")]
    ).writeto(level1)
    params = ["algorithm=toy_median_adi", "fwhm=4", "compute_contrast=false", "previews=false"]
    run = run_recipe("l2-postprocess", {"level1": level1}, params, work_dir=tmp_path / "l2")
    assert run.outputs["summary"]["pixel_scale_mas"] == 27.2
    assert run.outputs["summary"]["algorithm"] == "toy_median_adi"


def test_a_broken_plugin_names_its_entry_point(site):
    _install(
        site,
        "broken-hcdc",
        {"broken": "import hcdc_no_such_module\n"},
        """
        [hcdc.algorithms]
        broken = toyscope_hcdc.broken
        """,
    )
    expected = r"entry point broken = 'toyscope_hcdc.broken' \(group 'hcdc.algorithms', broken-hcdc 0.1\)"
    with pytest.raises(plugins.PluginError, match=expected) as err:
        postprocessing.load_plugins()
    assert isinstance(err.value.__cause__, ModuleNotFoundError)


def test_hcdc_declares_its_own_modules_as_entry_points():
    """hcdc's own instruments, algorithms, recipes and workflows are the entry points of its
    pyproject.toml (read from the source tree here: the tests run with PYTHONPATH=src)."""
    import tomllib
    from pathlib import Path

    from hcdc.pipeline.registry import list_recipes
    from hcdc.pipeline.workflow import describe_workflows

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert plugins.source_pyproject() == pyproject
    declared = tomllib.loads(pyproject.read_text())["project"]["entry-points"]
    for group in plugins.GROUPS.values():
        assert plugins.builtin_modules(group) == tuple(declared[group].values())
    registry.instruments(), list_recipes(), describe_workflows()
    assert all(m in sys.modules for g in plugins.GROUPS.values() for m in plugins.builtin_modules(g))
    assert {"SPHERE", "NACO", "OIFITS", "UNKNOWN"} <= set(registry.instrument_names())
    assert {"pca", "cadi", "loci", "rdi", "sdi"} <= set(ALGORITHMS)


def test_a_checkout_ignores_the_installed_metadata_of_another(site):
    """Installed hcdc metadata naming a module this checkout does not have (another checkout's,
    or an older install) is not imported: a source tree reads its own pyproject.toml."""
    _install(site, "hcdc", {}, "[hcdc.recipes]\ngone = hcdc.pipeline.recipes.no_such_module\n")
    loaded = plugins.load_plugins("hcdc.recipes")  # no PluginError for the missing module
    assert "hcdc.pipeline.recipes.no_such_module" not in loaded
    assert all(m in sys.modules for m in plugins.builtin_modules("hcdc.recipes"))


def test_an_installed_hcdc_reads_its_own_entry_points(site, monkeypatch):
    """Without a source tree (a wheel), hcdc's modules are its distribution's entry points."""
    _install(site, "hcdc", {}, "[hcdc.workflows]\nirdis = hcdc.pipeline.workflows.irdis\n")
    monkeypatch.setattr(plugins, "source_pyproject", lambda: None)
    plugins.builtin_modules.cache_clear()
    try:
        assert plugins.builtin_modules("hcdc.workflows") == ("hcdc.pipeline.workflows.irdis",)
        with pytest.raises(plugins.PluginError, match="declare none of hcdc's own modules; reinstall"):
            plugins.builtin_modules("hcdc.recipes")
    finally:
        plugins.builtin_modules.cache_clear()

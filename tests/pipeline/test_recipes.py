"""Recipe base class: parameters, inputs/outputs, registry, runs, logs and failures."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pytest
from pydantic import Field

from hcdc.pipeline.errors import ParameterError, RecipeFailed, RecipeInputError, UnknownRecipeError
from hcdc.pipeline.parameters import RecipeParameters, parse_kv_strings
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.provenance import FileRef
from hcdc.pipeline.recipe import Recipe, RecipeContext
from hcdc.pipeline.registry import get_recipe, list_recipes, register_recipe, run_recipe, unregister_recipe
from hcdc.science.geometry import derotate


class DerotateParams(RecipeParameters):
    combine: Literal["median", "mean"] = Field("median", description="how frames are combined")
    order: int = Field(3, ge=0, le=5, description="spline order of the rotation")
    scale: float = Field(1.0, gt=0, description="factor applied to the result")
    frames: list[int] | None = Field(None, description="frames to keep (all when None)")
    fail: bool = Field(False, description="raise inside the step (to test failures)")


@register_recipe
class DerotateCombine(Recipe):
    """Test recipe: derotate a cube with hcdc.science.geometry and combine its frames."""

    name = "test-derotate-combine"
    version = "1.1"
    description = "derotate an ADI cube and combine (test recipe)"
    Parameters = DerotateParams
    inputs = (
        Port("cube", DataKind.PATH, "(frames, y, x) cube as .npy"),
        Port("angles", DataKind.ARRAY, "derotation angles, deg"),
    )
    outputs = (
        Port("image", DataKind.PATH, "combined image as .npy"),
        Port("nframes", DataKind.VALUE, "frames combined"),
    )

    def process(self, inputs, params, context):
        cube = np.load(inputs["cube"])
        angles = inputs["angles"]
        if params.frames is not None:
            cube, angles = cube[params.frames], angles[params.frames]
        if params.fail:
            raise ZeroDivisionError("asked to fail")
        logging.getLogger("hcdc.science.testing").warning("a science warning")
        with context.timer("derotate"):
            derotated = derotate(cube, angles, order=params.order, fill_value=0.0)
        for k in range(cube.shape[0]):
            context.progress("combine", k + 1, cube.shape[0])
        combine = np.median if params.combine == "median" else np.mean
        image = (combine(derotated, axis=0) * params.scale).astype(np.float32)
        path = context.output_path("image.npy")
        np.save(path, image)
        context.log(f"combined {cube.shape[0]} frames")
        return {"image": path, "nframes": int(cube.shape[0])}


@register_recipe
class DerotateCombineOld(DerotateCombine):
    version = "1.0"


@pytest.fixture
def adi_input(tmp_path):
    rng = np.random.default_rng(3)
    cube = rng.normal(size=(4, 15, 15)).astype(np.float32)
    cube_path = tmp_path / "cube.npy"
    np.save(cube_path, cube)
    angles = np.array([0.0, 10.0, 20.0, 30.0])
    return cube, cube_path, angles


# -- parameters --------------------------------------------------------------------------------


def test_parameters_defaults_and_dict():
    params = DerotateCombine.parse_params({"order": 1})
    assert params.order == 1 and params.combine == "median" and params.scale == 1.0 and params.frames is None


def test_parameters_from_kv_strings_are_coerced():
    params = DerotateCombine.parse_params(
        ["order=2", "scale=2.5", "combine=mean", "frames=0,2", "fail=false"]
    )
    assert params.order == 2 and isinstance(params.order, int)
    assert params.scale == 2.5 and params.combine == "mean" and params.frames == [0, 2]
    assert params.fail is False
    assert DerotateCombine.parse_params(["frames=[1, 3]"]).frames == [1, 3]
    assert DerotateCombine.parse_params(["frames=none"]).frames is None
    # strings in a dict (e.g. from a config file) are coerced the same way
    assert DerotateCombine.parse_params({"order": "4"}).order == 4


def test_parse_kv_strings_rejects_malformed():
    assert parse_kv_strings(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ParameterError, match="key=value"):
        parse_kv_strings(["ncomp"])


def test_unknown_parameter_is_rejected_with_suggestion():
    with pytest.raises(ParameterError) as err:
        DerotateCombine.parse_params({"oder": 1})
    message = str(err.value)
    assert "'oder'" in message and "did you mean 'order'" in message and "combine, order" in message


@pytest.mark.parametrize(
    ("values", "field"),
    [({"order": 7}, "order"), (["scale=-1"], "scale"), (["combine=mode"], "combine"), (["order=x"], "order")],
)
def test_invalid_parameter_values_are_reported(values, field):
    with pytest.raises(ParameterError) as err:
        DerotateCombine.parse_params(values)
    assert f"  {field}:" in str(err.value) and "test-derotate-combine" in str(err.value)


def test_describe_lists_parameters_inputs_outputs():
    info = DerotateCombine.describe()
    assert info["name"] == "test-derotate-combine" and info["version"] == "1.1"
    params = {p["name"]: p for p in info["parameters"]}
    assert (
        params["order"]["default"] == 3
        and params["order"]["minimum"] == 0
        and params["order"]["maximum"] == 5
    )
    assert params["combine"]["enum"] == ["median", "mean"]
    assert params["scale"]["description"] == "factor applied to the result"
    assert [i["kind"] for i in info["inputs"]] == ["path", "array"]


# -- registry ------------------------------------------------------------------------------------


def test_registry_finds_newest_and_exact_versions():
    assert get_recipe("test-derotate-combine") is DerotateCombine
    assert get_recipe("test-derotate-combine", "1.0") is DerotateCombineOld
    assert DerotateCombine in list_recipes() and DerotateCombineOld not in list_recipes()
    with pytest.raises(UnknownRecipeError, match="available versions: 1.0, 1.1"):
        get_recipe("test-derotate-combine", "2.0")
    with pytest.raises(UnknownRecipeError, match="did you mean 'test-derotate-combine'"):
        get_recipe("test-derotate-combin")


def test_registry_rejects_bad_declarations():
    class BadName(Recipe):
        name = "Bad Name"
        version = "1.0"

    with pytest.raises(ValueError, match="must match"):
        register_recipe(BadName)

    class BadVersion(Recipe):
        name = "test-bad-version"
        version = "one"

    with pytest.raises(ValueError, match="dotted integers"):
        register_recipe(BadVersion)

    class Clash(DerotateCombine):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_recipe(Clash)


def test_unregister():
    @register_recipe
    class Temporary(Recipe):
        name = "test-temporary"
        version = "1.0"

    assert get_recipe("test-temporary") is Temporary
    unregister_recipe("test-temporary")
    with pytest.raises(UnknownRecipeError):
        get_recipe("test-temporary")


# -- running ---------------------------------------------------------------------------------------


def test_run_produces_outputs_log_and_timings(adi_input, tmp_path):
    cube, cube_path, angles = adi_input
    result = run_recipe(
        "test-derotate-combine",
        {"cube": cube_path, "angles": angles},
        ["order=1", "scale=2"],
        work_dir=tmp_path / "out",
    )
    assert result.ok and result.recipe == "test-derotate-combine" and result.version == "1.1"
    expected = np.median(derotate(cube, angles, order=1, fill_value=0.0), axis=0) * 2
    np.testing.assert_allclose(np.load(result.outputs["image"]), expected, rtol=1e-6)
    assert result.outputs["nframes"] == 4
    assert result.outputs["image"].parent == tmp_path / "out"
    assert result.params.order == 1 and result.params.combine == "median"
    assert result.timings["total"] >= result.timings["process"] >= result.timings["derotate"] > 0
    joined = "\n".join(result.log)
    assert "started" in joined and "combined 4 frames" in joined and "done in" in joined
    # warnings from the science layer's loggers land in the run's log
    assert "[hcdc.science.testing] a science warning" in joined
    assert result.started <= result.finished
    assert result.provenance is not None and result.provenance.status == "done"


def test_run_with_explicit_context_and_fileref(adi_input, tmp_path):
    _, cube_path, angles = adi_input
    seen = []
    context = RecipeContext(
        work_dir=tmp_path / "ctx",
        workflow="wf",
        workflow_version="2.0",
        node="n1",
        on_progress=lambda *a: seen.append(a),
    )
    result = DerotateCombine().run(
        {"cube": FileRef(cube_path, id=42), "angles": angles}, {"frames": [0, 1]}, context
    )
    assert result.outputs["nframes"] == 2
    assert seen == [("combine", 1, 2), ("combine", 2, 2)]
    assert sum("combine: done (2)" in line for line in result.log) == 1
    rec = result.provenance
    assert (rec.workflow, rec.workflow_version, rec.node) == ("wf", "2.0", "n1")
    assert rec.input("cube").files[0].id == 42


def test_inputs_are_checked_before_running(adi_input, tmp_path):
    _, cube_path, angles = adi_input
    recipe = DerotateCombine()
    out = tmp_path / "out"
    with pytest.raises(RecipeInputError, match="required input 'angles'"):
        recipe.run({"cube": cube_path}, work_dir=out)
    with pytest.raises(RecipeInputError, match=r"no input\(s\) psf; inputs: cube, angles"):
        recipe.run({"cube": cube_path, "angles": angles, "psf": cube_path}, work_dir=out)
    with pytest.raises(RecipeInputError, match="missing.npy does not exist"):
        recipe.run({"cube": tmp_path / "missing.npy", "angles": angles}, work_dir=out)
    with pytest.raises(RecipeInputError, match="expected a numpy array, got list"):
        recipe.run({"cube": cube_path, "angles": [0.0, 1.0]}, work_dir=out)
    with pytest.raises(ParameterError):
        recipe.run({"cube": cube_path, "angles": angles}, {"bogus": 1}, work_dir=out)
    assert not out.exists()  # nothing ran


def test_failure_is_recorded_and_raised(adi_input, tmp_path):
    _, cube_path, angles = adi_input
    with pytest.raises(RecipeFailed, match="ZeroDivisionError: asked to fail") as err:
        DerotateCombine().run({"cube": cube_path, "angles": angles}, ["fail=true"], work_dir=tmp_path)
    result = err.value.result
    assert result.status == "failed" and not result.ok and result.outputs == {}
    assert "Traceback" in "\n".join(result.log)
    assert result.provenance.status == "failed" and "asked to fail" in result.provenance.error


def test_missing_declared_output_is_an_error(tmp_path):
    class Forgetful(Recipe):
        name = "test-forgetful"
        version = "1.0"
        outputs = (Port("value", DataKind.VALUE),)

        def process(self, inputs, params, context):
            return {}

    with pytest.raises(RecipeFailed, match="did not produce output 'value'"):
        Forgetful().run({}, work_dir=tmp_path)

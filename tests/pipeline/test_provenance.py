"""Provenance records: content, JSON round trip, checksums, git commit, and rerun from the record."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import sys

import numpy as np
import pytest
from pydantic import Field

import hcdc
from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.provenance import (
    EMBED_ARRAY_MAX_BYTES,
    FileRef,
    ProvenanceError,
    ProvenanceRecord,
    describe_value,
    outputs_differ,
    sha256_array,
    sha256_path,
)
from hcdc.pipeline.recipe import Recipe
from hcdc.pipeline.registry import register_recipe
from hcdc.pipeline.replay import rerun
from hcdc.runtime.versions import read_git_commit
from hcdc.science.geometry import derotate


class StackParams(RecipeParameters):
    order: int = Field(3, ge=0, le=5, description="spline order of the rotation")
    gain: float = Field(1.0, description="factor applied to the result")


@register_recipe
class DerotateStack(Recipe):
    """Test recipe: derotate frames (hcdc.science.geometry) and sum them, into a .npy file."""

    name = "test-prov-stack"
    version = "2.0"
    Parameters = StackParams
    inputs = (
        Port("cube", DataKind.PATH, "(frames, y, x) .npy"),
        Port("angles", DataKind.ARRAY, "derotation angles, deg"),
        Port("label", DataKind.VALUE, "a label", optional=True),
    )
    outputs = (Port("image", DataKind.PATH), Port("peak", DataKind.VALUE))

    def process(self, inputs, params, context):
        cube = np.load(inputs["cube"])
        image = derotate(cube, inputs["angles"], order=params.order, fill_value=0.0).sum(axis=0) * params.gain
        path = context.output_path("stack.npy")
        np.save(path, image.astype(np.float32))
        return {"image": path, "peak": float(image.max())}


@pytest.fixture
def first_run(tmp_path):
    rng = np.random.default_rng(11)
    cube = rng.normal(size=(5, 21, 21)).astype(np.float32)
    cube[:, 14, 10] += 50.0
    cube_path = tmp_path / "in" / "cube.npy"
    cube_path.parent.mkdir()
    np.save(cube_path, cube)
    angles = np.linspace(0.0, 40.0, 5)
    result = DerotateStack().run(
        {"cube": FileRef(cube_path, id=7), "angles": angles, "label": "t1"},
        ["gain=0.5"],
        work_dir=tmp_path / "run1",
    )
    return result, cube_path, angles


def test_record_content(first_run):
    result, cube_path, angles = first_run
    rec = result.provenance
    assert rec.recipe == "test-prov-stack" and rec.recipe_version == "2.0" and rec.status == "done"
    assert rec.parameters == {"order": 3, "gain": 0.5}  # defaults filled in
    cube_in = rec.input("cube")
    assert cube_in.files[0].path == str(cube_path.resolve()) and cube_in.files[0].id == 7
    assert cube_in.files[0].sha256 == hashlib.sha256(cube_path.read_bytes()).hexdigest()
    assert rec.input("angles").array.sha256 == sha256_array(angles) and rec.input("angles").array.data
    assert rec.input("label").value == "t1"
    image_path = result.outputs["image"]
    assert rec.output("image").files[0].sha256 == hashlib.sha256(image_path.read_bytes()).hexdigest()
    assert rec.output("peak").value == pytest.approx(result.outputs["peak"])
    assert rec.software_version == hcdc.__version__
    assert rec.git_commit == read_git_commit()
    assert rec.python == sys.version.split()[0]
    assert set(rec.libraries) >= {"numpy", "scipy", "astropy", "sqlalchemy"}
    assert rec.libraries["numpy"] == np.__version__
    assert rec.host == socket.gethostname()
    started, finished = dt.datetime.fromisoformat(rec.started), dt.datetime.fromisoformat(rec.finished)
    assert started.utcoffset() == dt.timedelta(0) and started <= finished and rec.duration_s >= 0
    assert any("done in" in line for line in rec.log)


def test_json_round_trip(first_run, tmp_path):
    rec = first_run[0].provenance
    text = rec.to_json()
    assert json.loads(text)["recipe"] == "test-prov-stack"
    assert ProvenanceRecord.from_json(text) == rec
    assert ProvenanceRecord.load(rec.save(tmp_path / "p" / "prov.json")) == rec
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ProvenanceError, match="bad.json: not a readable provenance record"):
        ProvenanceRecord.load(tmp_path / "bad.json")


def test_rerun_from_json_alone_is_bit_identical(first_run, tmp_path):
    result, _, _ = first_run
    json_path = result.provenance.save(tmp_path / "prov.json")
    again = rerun(json_path, tmp_path / "run2")  # only the JSON file
    assert again.outputs["image"].parent == tmp_path / "run2"
    assert np.load(again.outputs["image"]).tobytes() == np.load(result.outputs["image"]).tobytes()
    assert sha256_path(again.outputs["image"]) == sha256_path(result.outputs["image"])
    assert outputs_differ(result.provenance, again.provenance) == []
    assert again.provenance.rerun_of == result.provenance.id
    assert again.provenance.id != result.provenance.id
    assert again.provenance.parameters == result.provenance.parameters
    assert again.provenance.input("cube").files[0].id == 7


def test_rerun_refuses_changed_or_missing_input(first_run, tmp_path):
    result, cube_path, _ = first_run
    text = result.provenance.to_json()
    cube = np.load(cube_path)
    cube[0, 0, 0] += 1
    np.save(cube_path, cube)
    with pytest.raises(ProvenanceError, match=r"input 'cube': .*cube.npy changed since the run"):
        rerun(text, tmp_path / "run2")
    cube_path.unlink()
    with pytest.raises(ProvenanceError, match="no longer exists"):
        rerun(text, tmp_path / "run2")
    assert not (tmp_path / "run2").exists()


def test_rerun_refuses_unavailable_recipe_version(first_run, tmp_path):
    rec = first_run[0].provenance.model_copy(update={"recipe_version": "1.7"})
    with pytest.raises(ProvenanceError, match="version 1.7 is not available; available versions: 2.0"):
        rerun(rec, tmp_path / "run2")
    rec = first_run[0].provenance.model_copy(update={"parameters": {"order": 9, "gain": 1.0}})
    with pytest.raises(ProvenanceError, match="recorded parameters invalid"):
        rerun(rec, tmp_path / "run2")


def test_large_array_must_be_supplied(tmp_path):
    np.save(tmp_path / "cube.npy", np.ones((3, 9, 9), np.float32))
    result = DerotateStack().run(
        {"cube": tmp_path / "cube.npy", "angles": np.zeros(3)}, work_dir=tmp_path / "a"
    )
    big = np.zeros(EMBED_ARRAY_MAX_BYTES // 8 + 1)
    assert describe_value("angles", "array", big, embed_arrays=True).array.data is None
    assert result.provenance.input("angles").array.data is not None
    rec = result.provenance.model_copy(deep=True)
    rec.inputs[1].array.data = None  # as if it had been too large
    with pytest.raises(ProvenanceError, match="too large to embed; supply it"):
        rerun(rec, tmp_path / "b")
    with pytest.raises(ProvenanceError, match="array checksum"):
        rerun(rec, tmp_path / "b", supplied={"angles": np.ones(3)})
    again = rerun(rec, tmp_path / "b", supplied={"angles": np.zeros(3)})
    assert outputs_differ(result.provenance, again.provenance) == []


def test_sha256_of_directory_tracks_content(tmp_path):
    product = tmp_path / "L1"
    (product / "sub").mkdir(parents=True)
    (product / "a.fits").write_bytes(b"abc")
    (product / "sub" / "b.fits").write_bytes(b"def")
    first = sha256_path(product)
    assert first == sha256_path(product)
    (product / "sub" / "b.fits").write_bytes(b"deg")
    assert sha256_path(product) != first
    (product / "sub" / "b.fits").write_bytes(b"def")
    (product / "sub" / "b.fits").rename(product / "sub" / "c.fits")  # names count too
    assert sha256_path(product) != first


def test_read_git_commit_from_git_files(tmp_path):
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert read_git_commit(tmp_path) == "unknown"  # (tmp is outside any checkout)
    git = tmp_path / "repo" / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    start = tmp_path / "repo" / "src" / "pkg"
    start.mkdir(parents=True)
    assert read_git_commit(start) == "unknown"  # no commit yet
    (git / "packed-refs").write_text(f"# pack-refs with: peeled\n{sha} refs/heads/main\n")
    assert read_git_commit(start) == sha
    (git / "refs" / "heads" / "main").write_text(sha.replace("0", "f") + "\n")
    assert read_git_commit(start) == sha.replace("0", "f")
    (git / "HEAD").write_text(sha + "\n")  # detached head
    assert read_git_commit(start) == sha

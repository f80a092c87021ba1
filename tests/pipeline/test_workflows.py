"""Workflows: validation, topological execution on every executor, failures, overrides, selection."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import Field

from hcdc.instruments.base import FileMetadata
from hcdc.pipeline.executors import DaskExecutor, ProcessPoolExecutor
from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.provenance import ProvenanceRecord, provenance_tree, sha256_path
from hcdc.pipeline.recipe import Recipe
from hcdc.pipeline.registry import register_recipe
from hcdc.pipeline.replay import rerun
from hcdc.pipeline.workflow import (
    Node,
    Workflow,
    WorkflowError,
    describe_workflows,
    get_workflow,
    list_workflows,
    register_workflow,
    run_workflow,
    select_workflow,
    unregister_workflow,
)

# -- small recipes on .npy files (module level: workers import them by reference) ----------------


class ScaleParams(RecipeParameters):
    factor: float = Field(1.0, description="multiplier")


@register_recipe
class Scale(Recipe):
    name = "test-wf-scale"
    version = "1.0"
    Parameters = ScaleParams
    inputs = (Port("data", DataKind.PATH),)
    outputs = (Port("data", DataKind.PATH),)

    def process(self, inputs, params, context):
        path = context.output_path("scaled.npy")
        np.save(path, np.load(inputs["data"]) * params.factor)
        return {"data": path}


class AddParams(RecipeParameters):
    fail: bool = Field(False, description="raise instead of adding")


@register_recipe
class Add(Recipe):
    name = "test-wf-add"
    version = "1.0"
    Parameters = AddParams
    inputs = (Port("a", DataKind.PATH), Port("b", DataKind.PATH))
    outputs = (Port("data", DataKind.PATH),)

    def process(self, inputs, params, context):
        if params.fail:
            raise RuntimeError("add was told to fail")
        path = context.output_path("sum.npy")
        np.save(path, np.load(inputs["a"]) + np.load(inputs["b"]))
        return {"data": path}


@register_recipe
class Total(Recipe):
    name = "test-wf-total"
    version = "1.0"
    inputs = (Port("data", DataKind.PATH),)
    outputs = (Port("total", DataKind.VALUE),)

    def process(self, inputs, params, context):
        return {"total": float(np.load(inputs["data"]).sum())}


@register_recipe
class CountRaw(Recipe):
    name = "test-wf-count-raw"
    version = "1.0"
    inputs = (Port("files", DataKind.RAW_FILES),)
    outputs = (Port("count", DataKind.VALUE),)

    def process(self, inputs, params, context):
        return {"count": len(inputs["files"])}


def diamond(**node_params) -> Workflow:
    """x -> (x*2, x*3) -> add -> total, plus an independent branch x*10 -> total."""
    return Workflow(
        name="test-diamond",
        version="1.0",
        description="diamond test workflow",
        inputs=(Port("x", DataKind.PATH, "an array"),),
        nodes=(
            Node("double", "test-wf-scale", {"data": "inputs.x"}, {"factor": 2.0}),
            Node("triple", "test-wf-scale", {"data": "inputs.x"}, {"factor": 3.0}),
            Node("add", "test-wf-add", {"a": "double.data", "b": "triple.data"}, node_params.get("add", {})),
            Node("total", "test-wf-total", {"data": "add.data"}),
            Node("tenfold", "test-wf-scale", {"data": "inputs.x"}, {"factor": 10.0}),
            Node("total_ten", "test-wf-total", {"data": "tenfold.data"}),
        ),
        outputs={"total": "total.total", "total_ten": "total_ten.total"},
    )


@pytest.fixture
def x_path(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(6, dtype=np.float64).reshape(2, 3))  # sum 15
    return path


# -- validation -------------------------------------------------------------------------------------


def test_valid_workflow_has_a_topological_order():
    wf = diamond()
    order = wf.order
    assert set(order) == {"double", "triple", "add", "total", "tenfold", "total_ten"}
    for node, deps in wf.dependencies().items():
        assert all(order.index(d) < order.index(node) for d in deps)
    assert wf.dependencies()["add"] == ["double", "triple"]


def _wf(nodes, inputs=(Port("x", DataKind.PATH),), outputs=None):
    return Workflow("test-bad", "1.0", "", inputs, nodes, outputs or {})


@pytest.mark.parametrize(
    ("nodes", "outputs", "message"),
    [
        (
            [
                Node("a", "test-wf-add", {"a": "b.data", "b": "inputs.x"}),
                Node("b", "test-wf-scale", {"data": "a.data"}),
            ],
            None,
            "the nodes a, b form a cycle",
        ),
        (
            [Node("a", "test-wf-add", {"a": "inputs.x"})],
            None,
            "node 'a': required input 'b' (path) is not bound",
        ),
        ([Node("a", "test-wf-scale", {"data": "ghost.data"})], None, "no node 'ghost' in the workflow"),
        ([Node("a", "test-wf-scale", {"data": "inputs.y"})], None, "the workflow declares no input 'y'"),
        ([Node("a", "test-wf-scale", {"data": "inputs.x", "extra": "inputs.x"})], None, "has no such input"),
        (
            [
                Node("a", "test-wf-total", {"data": "inputs.x"}),
                Node("b", "test-wf-scale", {"data": "a.total"}),
            ],
            None,
            "type mismatch, a.total is value but the input takes path",
        ),
        (
            [Node("a", "test-wf-count-raw", {"files": "inputs.x"})],
            None,
            "inputs.x is path but the input takes raw_files",
        ),
        ([Node("a", "test-wf-scale", {"data": "inputs.x"}, {"factr": 2})], None, "did you mean 'factor'"),
        ([Node("a", "no-such-recipe", {})], None, "node 'a': no recipe named 'no-such-recipe'"),
        (
            [Node("a", "test-wf-scale", {"data": "inputs.x"}, version="9.0")],
            None,
            "version 9.0 is not available",
        ),
        (
            [
                Node("a", "test-wf-scale", {"data": "inputs.x"}),
                Node("a", "test-wf-scale", {"data": "inputs.x"}),
            ],
            None,
            "duplicate node name(s) a",
        ),
        ([Node("inputs", "test-wf-scale", {"data": "inputs.x"})], None, "node name 'inputs'"),
        ([Node("a", "test-wf-scale", {"data": "x"})], None, "must be 'inputs.<name>' or '<node>.<output>'"),
        ([Node("a", "test-wf-scale", {"data": "inputs.x"})], {"out": "a.nothing"}, "has no output 'nothing'"),
    ],
)
def test_invalid_workflows_are_rejected_with_clear_errors(nodes, outputs, message):
    with pytest.raises(WorkflowError) as err:
        _wf(nodes, outputs=outputs)
    assert message in str(err.value) and "workflow 'test-bad' is invalid" in str(err.value)


# -- parameters ---------------------------------------------------------------------------------------


def test_parameter_overrides():
    wf = diamond()
    params = wf.resolve_params(["double.factor=4", "add.fail=false"])
    assert params["double"].factor == 4.0 and params["triple"].factor == 3.0 and params["add"].fail is False
    everywhere = wf.resolve_params({"factor": "7"})  # no prefix: every node having it
    assert {everywhere[n].factor for n in ("double", "triple", "tenfold")} == {7.0}
    with pytest.raises(WorkflowError, match="no node of workflow 'test-diamond' has it"):
        wf.resolve_params(["ncomp=3"])
    with pytest.raises(WorkflowError, match="has no node 'ghost'"):
        wf.resolve_params(["ghost.factor=3"])
    with pytest.raises(WorkflowError, match="(?s)node 'double'.*factor"):
        wf.resolve_params(["double.factor=abc"])


def test_describe_shows_workflow_defaults():
    info = diamond().describe()
    nodes = {n["name"]: n for n in info["nodes"]}
    assert nodes["triple"]["parameters"][0]["name"] == "factor"
    assert nodes["triple"]["parameters"][0]["default"] == 3.0
    assert nodes["add"]["depends_on"] == ["double", "triple"]
    json.dumps(info)  # JSON-ready for `hcdc workflows --json`


# -- running -------------------------------------------------------------------------------------------


def _check_diamond_result(result, tmp_path, x_sum=15.0):
    assert result.status == "done", {n: r.error for n, r in result.nodes.items()}
    assert result.outputs["total"] == pytest.approx(5 * x_sum)
    assert result.outputs["total_ten"] == pytest.approx(10 * x_sum)
    prov = result.provenance
    # provenance: the add node points at the two nodes that made its inputs, the total at add
    assert set(prov["add"].parents) == {prov["double"].id, prov["triple"].id}
    assert prov["total"].parents == [prov["add"].id]
    assert prov["double"].parents == [] and prov["double"].workflow == "test-diamond"
    assert prov["add"].node == "add" and prov["add"].workflow_version == "1.0"
    assert ProvenanceRecord.load(tmp_path / "run" / "add" / "provenance.json") == prov["add"]


def test_run_inline(tmp_path, x_path):
    events = []
    result = run_workflow(
        diamond(), {"x": x_path}, work_dir=tmp_path / "run", on_event=lambda n, e, r: events.append((n, e))
    )
    _check_diamond_result(result, tmp_path)
    assert ("add", "submitted") in events and ("add", "done") in events
    # the provenance tree of the final total goes down to the input file
    records = {rec.id: rec for rec in result.provenance.values()}
    tree = provenance_tree(result.provenance["total"], records)
    assert tree["node"] == "total" and [p["node"] for p in tree["parents"]] == ["add"]
    leaves = tree["parents"][0]["parents"]
    assert sorted(p["node"] for p in leaves) == ["double", "triple"]
    assert leaves[0]["inputs"][0]["files"][0]["sha256"] == sha256_path(x_path)
    assert leaves[0]["parents"] == []
    partial = provenance_tree(result.provenance["total"], {})
    assert partial["parents"] == [{"id": result.provenance["add"].id, "missing": True}]
    # every node's output can be rebuilt from its provenance.json alone
    again = rerun(tmp_path / "run" / "add" / "provenance.json", tmp_path / "again")
    assert sha256_path(again.outputs["data"]) == sha256_path(result.nodes["add"].result.outputs["data"])


def test_failing_node_skips_its_descendants_only(tmp_path, x_path):
    result = run_workflow(diamond(), {"x": x_path}, ["add.fail=true"], work_dir=tmp_path / "run")
    status = {name: run.status for name, run in result.nodes.items()}
    assert status == {
        "double": "done",
        "triple": "done",
        "add": "failed",
        "total": "skipped",
        "tenfold": "done",
        "total_ten": "done",
    }
    assert result.status == "failed"
    assert "add was told to fail" in result.nodes["add"].error
    assert "Traceback" in result.nodes["add"].traceback
    assert result.nodes["total"].error == "skipped: add failed"
    assert result.outputs == {"total_ten": pytest.approx(150.0)}
    summary = json.loads(json.dumps(result.summary()))
    assert summary["status"] == "failed" and summary["nodes"]["total"]["status"] == "skipped"
    assert summary["nodes"]["add"]["error"].startswith("RuntimeError: add was told to fail")
    assert summary["nodes"]["double"]["provenance_id"] == result.provenance["double"].id
    assert summary["outputs"] == {"total_ten": 150.0}
    record = ProvenanceRecord.load(tmp_path / "run" / "add" / "provenance.json")
    assert record.status == "failed"


def test_bad_workflow_inputs_fail_before_running(tmp_path, x_path):
    with pytest.raises(WorkflowError, match="required input 'x' \\(path\\) is missing"):
        run_workflow(diamond(), {}, work_dir=tmp_path / "run")
    with pytest.raises(WorkflowError, match="has no input\\(s\\) y"):
        run_workflow(diamond(), {"x": x_path, "y": x_path}, work_dir=tmp_path / "run")
    with pytest.raises(WorkflowError, match="gone.npy does not exist"):
        run_workflow(diamond(), {"x": tmp_path / "gone.npy"}, work_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_run_on_process_pool(tmp_path, x_path):
    with ProcessPoolExecutor(2) as executor:
        result = run_workflow(diamond(), {"x": x_path}, work_dir=tmp_path / "run", executor=executor)
        _check_diamond_result(result, tmp_path)
        failed = run_workflow(
            diamond(), {"x": x_path}, ["add.fail=true"], work_dir=tmp_path / "f", executor=executor
        )
    assert failed.nodes["add"].status == "failed" and failed.nodes["total_ten"].status == "done"
    hosts = {r.provenance.host for r in (n.result for n in result.nodes.values())}
    assert len(hosts) == 1


def test_run_on_dask_local_cluster(tmp_path, x_path):
    with DaskExecutor(n_workers=2, threads_per_worker=1, processes=True, silence_logs=40) as executor:
        result = run_workflow(diamond(), {"x": x_path}, work_dir=tmp_path / "run", executor=executor)
        _check_diamond_result(result, tmp_path)
        failed = run_workflow(
            diamond(), {"x": x_path}, ["add.fail=true"], work_dir=tmp_path / "f", executor=executor
        )
    assert failed.nodes["add"].status == "failed" and failed.nodes["total"].status == "skipped"
    assert failed.outputs["total_ten"] == pytest.approx(150.0)


# -- standard workflows and selection ------------------------------------------------------------------


@pytest.fixture
def standard_workflows():
    @register_workflow("test-irdis-dbi", modes=[("SPHERE", "IRDIS", "DBI")], priority=100)
    def _dbi() -> Workflow:
        wf = diamond()
        wf.name = "test-irdis-dbi"
        return wf

    @register_workflow(
        "test-broken", modes=[("SPHERE", "IRDIS", "CI"), ("SPHERE", "IRDIS", "LSS")], priority=100
    )
    def _broken() -> Workflow:
        return Workflow("test-broken", "1.0", "", (), (Node("a", "recipe-not-installed"),))

    yield
    unregister_workflow("test-irdis-dbi")
    unregister_workflow("test-broken")


def _meta(mode, file_class="SCIENCE", arm="IRDIS"):
    return FileMetadata(instrument="SPHERE", arm=arm, mode=mode, file_class=file_class)


def test_select_workflow_from_classification(standard_workflows):
    files = [_meta("DBI"), _meta("DBI"), _meta(None, "DARK"), _meta("DBI", "FLUX")]
    assert select_workflow(files).name == "test-irdis-dbi"
    with pytest.raises(WorkflowError, match="mixes instrument modes"):
        select_workflow([_meta("DBI"), _meta("CI")])
    # the preferred CI workflow needs a recipe that is not installed: the next one serves
    assert select_workflow([_meta("CI")]).name == "irdis-l1-l2"
    with pytest.raises(WorkflowError, match="no available standard workflow for SPHERE/IRDIS/LSS"):
        select_workflow([_meta("LSS")])
    # IFS has its own standard workflows (Level 1 -> ASDI Level 2 -> companion spectra)
    assert select_workflow([_meta("IFS-YJ", arm="IFS")]).name == "ifs-l1-l2"
    with pytest.raises(WorkflowError, match="no available standard workflow for SPHERE/IFS/IFS-XX"):
        select_workflow([_meta("IFS-XX", arm="IFS")])
    with pytest.raises(WorkflowError, match="empty dataset"):
        select_workflow([])


def test_list_and_describe_workflows(standard_workflows):
    names = [wf.name for wf in list_workflows()]
    assert "test-irdis-dbi" in names and "test-broken" not in names
    described = {d["name"]: d for d in describe_workflows()}
    assert described["test-irdis-dbi"]["modes"] == [["SPHERE", "IRDIS", "DBI"]]
    assert get_workflow("test-irdis-dbi").order == diamond().order
    with pytest.raises(WorkflowError, match="no workflow named 'nope'"):
        get_workflow("nope")

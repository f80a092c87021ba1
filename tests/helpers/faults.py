"""Helpers of the fault tests: real ``hcdc`` processes, killed at named fault points
(:mod:`hcdc.runtime.faults`), and the store check that must follow every restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from astropy.io import fits

from hcdc.runtime.faults import FAULT_POINT_VARIABLE

HCDC = [sys.executable, "-c", "from hcdc.cli import main; main()"]


#: environment variable set on every process the helpers start (inherited by their children),
#: so that :func:`leftover_processes` finds what a killed process left running
RUN_MARKER = "HCDC_TEST_RUN"


def hcdc_env(root: Path, fault: str | None = None, marker: str = "") -> dict[str, str]:
    """Environment of an ``hcdc`` process on data centre ``root`` (armed with ``fault``)."""
    env = {**os.environ, "HCDC_ROOT": str(root), RUN_MARKER: marker}
    env.pop(FAULT_POINT_VARIABLE, None)
    if fault is not None:
        env[FAULT_POINT_VARIABLE] = fault
    return env


def leftover_processes(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``HCDC_TEST_RUN=marker``."""
    needle = f"{RUN_MARKER}={marker}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0") and pid_alive(int(proc.name)):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def hcdc(
    *args: str,
    root: Path,
    fault: str | None = None,
    timeout: float = 300,
    check: bool = False,
    marker: str = "",
) -> subprocess.CompletedProcess:
    """Run ``hcdc ARGS`` on data centre ``root`` to its end (with ``HCDC_FAULT_POINT=fault``)."""
    env = hcdc_env(root, fault, marker)
    done = subprocess.run([*HCDC, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"hcdc {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def hcdc_killed_at(
    fault: str, *args: str, root: Path, timeout: float = 300, marker: str = ""
) -> subprocess.CompletedProcess:
    """Run ``hcdc ARGS`` armed with the fault point ``fault``; assert it died there (SIGKILL)."""
    done = hcdc(*args, root=root, fault=fault, timeout=timeout, marker=marker)
    assert done.returncode == -signal.SIGKILL, (
        f"hcdc {' '.join(args)} was to be killed at {fault} but exited {done.returncode}:\n"
        f"{done.stderr[-3000:]}"
    )
    return done


def fsck_report(root: Path) -> dict:
    """``hcdc fsck --json --grace 0`` of the data centre (its JSON report)."""
    done = hcdc("fsck", "--json", "--grace", "0", root=root)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return json.loads(done.stdout)


def assert_clean_store(root: Path) -> dict:
    """The data centre's store is clean: no orphan, nothing missing or damaged, no duplicate."""
    report = fsck_report(root)
    assert report["counts"] == {"orphan": 0, "missing": 0, "checksum": 0, "duplicate": 0}, report["problems"]
    assert report["clean"], report
    return report


def write_user_cube(folder: Path) -> dict[str, Path]:
    """A small ADI cube with angles and PSF (inputs of the quick ``l2-user-cube`` workflow)."""
    from hcdc.science.simulation.adi import simulate_adi_cube

    folder.mkdir(parents=True, exist_ok=True)
    sim = simulate_adi_cube(
        n_frames=16, size=49, fwhm=4.0, rotation=70.0, companions=[(12.0, 300.0, 1e-2)], seed=4
    )
    for name in ("cube", "angles", "psf"):
        fits.writeto(folder / f"{name}.fits", getattr(sim, name), overwrite=True)
    return {name: folder / f"{name}.fits" for name in ("cube", "angles", "psf")}


def queue_cube_job(engine, files: dict[str, Path], *params: str, max_attempts: int = 3) -> int:  # noqa: ANN001
    """Queue an ``l2-user-cube`` job on ``files`` (quick: no contrast curve, no previews)."""
    from hcdc.pipeline.operations import jobs as jq

    return jq.queue_job(
        engine,
        inputs=dict(files),
        workflow="l2-user-cube",
        parameters=["compute_contrast=false", "previews=false", "ncomp=2", *params],
        max_attempts=max_attempts,
    )


def wait_for(condition, timeout: float, what: str):  # noqa: ANN001, ANN201
    """Poll ``condition()`` every 0.05 s until it returns something true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"

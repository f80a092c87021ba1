"""``hcdc serve`` starts uvicorn on a data centre and serves the portal and the API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from hcdc.archive.db import init_data_centre


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_hcdc_serve(tmp_path: Path) -> None:
    init_data_centre(tmp_path / "dc").close()
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from hcdc.cli import main; main()",
            "serve",
            "--root",
            str(tmp_path / "dc"),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "hcdc serve did not answer within 90 s"
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/me") as response:
            assert b'"public"' in response.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as response:
            assert b"Products per level" in response.read()
            assert response.headers["X-Frame-Options"] == "DENY"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    assert (tmp_path / "dc" / "web-secret.key").stat().st_mode & 0o077 == 0  # private to its owner


def test_hcdc_serve_names_a_missing_data_centre(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from hcdc.cli import main; main()",
            "serve",
            "--root",
            str(tmp_path / "none"),
        ],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "not an hcdc data centre" in result.stderr

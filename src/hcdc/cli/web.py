"""``hcdc serve``: the portal and the REST API of a data centre (uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from hcdc.cli.common import ROOT_OPTION, errors, fail


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes (each with its own pool)."),
    secure_cookies: bool = typer.Option(
        False, "--secure-cookies", help="Mark the session cookie Secure (behind an https proxy)."
    ),
    root: Path | None = ROOT_OPTION,
) -> None:
    """Serve the portal (http://HOST:PORT/) and the REST API (/api/v1, OpenAPI at /api/v1/openapi.json)."""
    import uvicorn

    from hcdc.archive.db import open_data_centre
    from hcdc.config import load_settings

    with errors():
        open_data_centre(root).close()  # fail early, with the archive's message, if it cannot open
    settings_root = load_settings(root).root
    # every worker process builds its own app (and engine) from these
    os.environ["HCDC_ROOT"] = str(settings_root)
    os.environ["HCDC_WEB_SECURE_COOKIES"] = "1" if secure_cookies else "0"
    typer.echo(f"hcdc: serving {settings_root} at http://{host}:{port}/ (Ctrl-C stops)", err=True)
    try:
        uvicorn.run(
            "hcdc.cli.web:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            proxy_headers=True,
            log_level="info",
        )
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc}")


def app_from_environment():  # noqa: ANN201 - a FastAPI app (imported lazily)
    """The app of ``$HCDC_ROOT`` (what each uvicorn worker process calls)."""
    from hcdc.web.app import create_app

    return create_app(
        os.environ.get("HCDC_ROOT"), secure_cookies=os.environ.get("HCDC_WEB_SECURE_COOKIES") == "1"
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)

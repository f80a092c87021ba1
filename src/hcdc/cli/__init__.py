"""The ``hcdc`` command line.

Each command group lives in its own module of this package and exposes ``register(app)``;
adding a command group is one module plus one line in ``_COMMAND_MODULES``.
"""

from __future__ import annotations

import importlib

import typer

from hcdc import __version__

app = typer.Typer(
    name="hcdc",
    help="hcdc: a data centre for high-angular-resolution astronomy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Modules of hcdc.cli that define commands; each has register(app: typer.Typer) -> None.
_COMMAND_MODULES: list[str] = [
    "archive",
    "simulate",
    "postprocess",
    "pipeline",
    "batches",
    "demo",
    "center",
    "accounts",
    "interferometry",
    "survey",
    "web",
    "tdb",
    "level3",
    "vo",
    "monitor",
    "rdi",
]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"hcdc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """hcdc: a data centre for high-angular-resolution astronomy."""


for _name in _COMMAND_MODULES:
    importlib.import_module(f"hcdc.cli.{_name}").register(app)


def main() -> None:
    app()

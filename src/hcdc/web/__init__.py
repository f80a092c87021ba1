"""The web interface of hcdc: portal pages and the REST API (FastAPI, Jinja2), served by
``hcdc serve``; see ``docs/portal.md``. Rights are decided by :mod:`hcdc.archive.access` only."""

from hcdc.web.app import create_app

__all__ = ["create_app"]

"""The AffectLens service: REST and WebSocket API, job store, worker processes.

Needs the ``service`` extra (``pip install 'affectlens[service]'``); the library itself never
imports this package. Start it with ``affectlens serve`` or :func:`affectlens.service.app.create_app`.
"""

from affectlens.service.config import ServiceConfig

__all__ = ["ServiceConfig", "create_app"]


def create_app(config: ServiceConfig | None = None):
    """See :func:`affectlens.service.app.create_app` (imported lazily: it needs FastAPI)."""
    from affectlens.service.app import create_app as _create_app

    return _create_app(config)

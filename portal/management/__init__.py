"""Management REST API: the Gravitee-compatible subset, JSON, HTTP Basic auth or personal access
tokens (portal.auth.load_user reads them)."""

from . import apis, subscriptions
from .blueprint import bp

# Importing the route modules puts their routes on the blueprint.
__all__ = ["apis", "bp", "subscriptions"]

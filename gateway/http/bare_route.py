"""A route to a bare ASGI app that still tells middleware which route matched, as FastAPI's routes do."""

from __future__ import annotations

from starlette.routing import Match, Route
from starlette.types import Scope


class BareASGIRoute(Route):
    """Starlette's Route leaves `scope["route"]` unset for ASGI endpoints; metrics label by it."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match != Match.NONE:
            child_scope["route"] = self
        return match, child_scope

"""``Plugin``: the base of every gateway plugin, built-in or written in Python by users.

A plugin is built once per configuration snapshot with its route's options and then
serves every request of that route. Override only the hooks you need: the gateway
looks at the class once and calls only what it defines. Hooks are the
:class:`~propylon.ProxyHttp` hooks of the same name, limited to a route::

    from propylon.gateway import Plugin

    class AddHeader(Plugin):
        def __init__(self, options):
            super().__init__(options)
            self.name, self.value = options["name"], options["value"]

        async def response_filter(self, session, upstream_response, ctx):
            upstream_response.insert_header(self.name, self.value)

``ctx`` is the request's :class:`~propylon.gateway.runtime.RequestCtx`; ``ctx.vars``
is a dict for plugins to share per-request values. A ``request_filter`` that answered
the request itself (``await session.write_response(...)``) returns True.
On reload, the module of a Python plugin is imported again, so edits go live.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["Plugin", "HOOKS", "defined_hooks"]

#: The hooks a plugin may define, in the order a request meets them.
HOOKS = ("request_filter", "upstream_request_filter", "request_body_filter", "response_filter", "logging")


class Plugin:
    """Per-route behaviour, built with the route's ``options`` (a dict)."""

    def __init__(self, options: Optional[dict] = None) -> None:
        self.options = options or {}

    async def request_filter(self, session: Any, ctx: Any) -> bool:
        """Inspect or answer the request; True when a response was written. Default: False."""
        return False

    async def upstream_request_filter(self, session: Any, upstream_request: Any, ctx: Any) -> None:
        """Change the request head sent upstream. Default: nothing."""

    async def request_body_filter(self, session: Any, body: Optional[bytes], end_of_stream: bool,
                                  ctx: Any) -> None:
        """See each piece of the request body as it goes upstream (``None`` and
        ``end_of_stream`` True for a request without one). It cannot change it.
        Default: nothing."""

    async def response_filter(self, session: Any, upstream_response: Any, ctx: Any) -> None:
        """Change the response head before it goes to the client. Default: nothing."""

    async def logging(self, session: Any, error: Any, ctx: Any) -> None:
        """Runs once at the end of every request of the route. Default: nothing."""


def defined_hooks(plugin: Plugin) -> tuple[str, ...]:
    """The hooks ``plugin``'s class defines itself (the others are never called)."""
    cls = type(plugin)
    return tuple(h for h in HOOKS if getattr(cls, h) is not getattr(Plugin, h))

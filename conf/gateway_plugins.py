"""A Python plugin for conf/gateway.yaml: adds one response header, set by options."""

from propylon.gateway import Plugin


class AddHeader(Plugin):
    """``options: {name: X-Plugin, value: hello}`` adds ``X-Plugin: hello`` to responses."""

    def __init__(self, options: dict) -> None:
        super().__init__(options)
        self.name = options["name"]
        self.value = options["value"]

    async def response_filter(self, session, upstream_response, ctx) -> None:
        upstream_response.insert_header(self.name, self.value)

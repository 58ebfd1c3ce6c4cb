"""The gateway configuration: typed models, loading with ``include:``, errors with paths,
and the JSON Schema generated from the models (shipped as ``gateway/schema.json``)."""

from __future__ import annotations

import json

from .load import (
    ConfigProblem,
    GatewayConfigError,
    format_path,
    load_config,
    looks_like_gateway,
    parse_config,
    server_conf,
)
from .models import GatewayConfig

__all__ = ["ConfigProblem", "GatewayConfig", "GatewayConfigError", "format_path", "json_schema",
           "load_config", "looks_like_gateway", "parse_config", "server_conf", "schema_text"]


def json_schema() -> dict:
    """The JSON Schema of a gateway file, generated from the models."""
    schema = GatewayConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Propylon gateway configuration"
    return schema


def schema_text() -> str:
    """:func:`json_schema` as the exact text shipped in the package."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"

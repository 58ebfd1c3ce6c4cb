"""The reference section of docs/gateway.md, generated from the models like the schema."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .models import GatewayConfig

__all__ = ["reference_markdown"]


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Union or origin is types.UnionType:
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_type_name(a) for a in inner)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map of {_type_name(args[0])} → {_type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return getattr(annotation, "__name__", str(annotation)).replace("NoneType", "null")


def _models(root: type, seen: list) -> None:
    if root in seen:
        return
    seen.append(root)
    for field in root.model_fields.values():
        stack = [field.annotation]
        while stack:
            a = stack.pop()
            if isinstance(a, type) and issubclass(a, BaseModel):
                _models(a, seen)
            stack.extend(typing.get_args(a))


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    value = field.default
    if value is PydanticUndefined or value is None:
        return ""
    if isinstance(value, BaseModel):
        return "(defaults)"
    if value in ([], {}):
        return "empty"
    return f"`{value}`"


def reference_markdown() -> str:
    """One table per model: key, type, default; the model's docstring above it."""
    models: list = []
    _models(GatewayConfig, models)
    out = []
    for model in models:
        out.append(f"### {model.__name__}\n")
        doc = (model.__doc__ or "").strip()
        if doc and not doc.startswith("!!!"):
            out.append(" ".join(doc.split()) + "\n")
        out.append("| key | type | default |\n|---|---|---|")
        for name, field in model.model_fields.items():
            out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} |")
        out.append("")
    return "\n".join(out)

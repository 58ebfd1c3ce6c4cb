"""Reading a gateway file: YAML, ``include:``, the models, and errors that name their path.

Every problem found is reported, one per :class:`ConfigProblem`, as
``<path>: <message>`` where the path is written the way a person points into the
file (``routes[2].plugins.rate_limit.per``). Unknown keys get a did-you-mean
suggestion. Nothing here raises anything but :class:`GatewayConfigError`.

``include:`` lists more files (relative to the including file), read first and in
order; the including file is merged on top of them. Mappings merge key by key, lists
are joined, and a scalar set later wins; a cluster name defined twice is an error.
Paths in messages refer to the merged document.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Union

import yaml
from pydantic import BaseModel, ValidationError

from .crossref import cross_check
from .models import PATTERN_HINTS, GatewayConfig

__all__ = ["ConfigProblem", "GatewayConfigError", "load_config", "parse_config", "looks_like_gateway",
           "format_path", "server_conf"]

#: Top-level keys that make a YAML file a gateway file rather than a server file.
GATEWAY_KEYS = frozenset({"listeners", "routes", "clusters", "include"})
MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True)
class ConfigProblem:
    """One error: where (a path into the document, "" for the file) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class GatewayConfigError(Exception):
    """The configuration was refused; ``problems`` lists every reason."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_path(loc: Iterable[Union[str, int]]) -> str:
    """``("routes", 2, "plugins")`` → ``routes[2].plugins``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# --- reading ---------------------------------------------------------------------------

def _read_yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise GatewayConfigError([ConfigProblem("", f"{path}: cannot read: {e.strerror or e}")]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise GatewayConfigError([ConfigProblem("", f"{path}: invalid YAML{where}: {problem}")]) from None


def looks_like_gateway(path: str) -> bool:
    """Whether ``path`` is a gateway file (has listeners/routes/clusters/include at the top)."""
    try:
        data = _read_yaml(path)
    except GatewayConfigError:
        return False
    return isinstance(data, dict) and bool(GATEWAY_KEYS & set(data))


def _merge(base: Any, top: Any, where: str, problems: list[ConfigProblem]) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for key, value in top.items():
            if key in out:
                if where == "clusters":
                    problems.append(ConfigProblem(f"clusters.{key}", "defined in more than one file"))
                    continue
                sub = f"{where}.{key}" if where else str(key)
                out[key] = _merge(out[key], value, sub, problems)
            else:
                out[key] = value
        return out
    if isinstance(base, list) and isinstance(top, list):
        return base + top
    return top


def _load_tree(path: str, depth: int, seen: tuple[str, ...], problems: list[ConfigProblem]) -> dict:
    data = _read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise GatewayConfigError([ConfigProblem("", f"{path}: expected a mapping at the top, "
                                                    f"got {type(data).__name__}")])
    includes = data.get("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        problems.append(ConfigProblem("include", "expected a list of file names"))
        return data
    merged: dict = {}
    base_dir = os.path.dirname(os.path.abspath(path))
    for i, name in enumerate(includes):
        full = os.path.normpath(os.path.join(base_dir, name))
        if full in seen or depth >= MAX_INCLUDE_DEPTH:
            problems.append(ConfigProblem(f"include[{i}]", f"{name!r} includes itself or nests too deep"))
            continue
        try:
            merged = _merge(merged, _load_tree(full, depth + 1, seen + (full,), problems), "", problems)
        except GatewayConfigError as e:
            problems.extend(ConfigProblem(f"include[{i}]", str(p)) for p in e.problems)
    body = {k: v for k, v in data.items() if k != "include"}
    return _merge(merged, body, "", problems)


def load_config(path: str) -> GatewayConfig:
    """Read and validate the gateway file ``path`` (and its includes).

    Raises :class:`GatewayConfigError` listing every problem.
    """
    problems: list[ConfigProblem] = []
    data = _load_tree(path, 0, (os.path.abspath(path),), problems)
    if problems:
        raise GatewayConfigError(problems)
    return parse_config(data)


def parse_config(data: Any) -> GatewayConfig:
    """Validate an already-parsed document (after includes). Raises :class:`GatewayConfigError`."""
    try:
        conf = GatewayConfig.model_validate(data)
    except ValidationError as e:
        raise GatewayConfigError(_problems_from(e, data) + list(_raw_cluster_refs(data))) from None
    problems = list(cross_check(conf)) + server_section_problems(conf)
    if problems:
        raise GatewayConfigError(problems)
    return conf


# --- turning pydantic's errors into paths ------------------------------------------------

def _problems_from(exc: ValidationError, data: Any) -> list[ConfigProblem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            key = loc[-1]
            allowed = _allowed_keys(loc[:-1])
            hint = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            out.append(ConfigProblem(format_path(loc[:-1]) or "(top level)", f"unknown key '{key}'{suggestion}"))
            continue
        if kind == "missing":
            out.append(ConfigProblem(format_path(loc[:-1]) or "(top level)", f"missing required key '{loc[-1]}'"))
            continue
        msg = err["msg"]
        if kind == "string_pattern_mismatch":
            msg = PATTERN_HINTS.get(err.get("ctx", {}).get("pattern"), msg)
        if loc and loc[-1] == "[key]":  # a mapping's key, not its value, is wrong
            out.append(ConfigProblem(format_path(loc[:-2]) or "(top level)", f"key {loc[-2]!r}: {msg}"))
            continue
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        elif "input" in err and not isinstance(err["input"], (dict, list)):
            msg = f"{msg[0].lower()}{msg[1:]}, got {err['input']!r}"
        else:
            msg = f"{msg[0].lower()}{msg[1:]}"
        out.append(ConfigProblem(format_path(loc) or "(top level)", msg))
    return out


def _raw_cluster_refs(data: Any) -> Iterable[ConfigProblem]:
    """Unknown cluster names, found in the raw document when the models refused it,
    so that one run reports them together with the shape errors."""
    if not isinstance(data, dict) or not isinstance(data.get("routes"), list):
        return
    clusters = data.get("clusters")
    known = list(clusters) if isinstance(clusters, dict) else []
    for i, route in enumerate(data["routes"]):
        proxy = route.get("proxy") if isinstance(route, dict) else None
        name = proxy.get("cluster") if isinstance(proxy, dict) else None
        if isinstance(name, str) and name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            yield ConfigProblem(f"routes[{i}].proxy.cluster", f"unknown cluster '{name}'{suggestion}")


def _model_of(annotation: Any) -> Any:
    """Unwrap Optional/Annotated to the inner type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation


def _allowed_keys(loc: tuple) -> list[str]:
    """The field names of the model found at ``loc`` (empty if it is not a model)."""
    current: Any = GatewayConfig
    for part in loc:
        current = _model_of(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        else:
            args = typing.get_args(current)
            if not args:
                return []
            current = args[-1]  # list[X] → X, dict[K, V] → V
    current = _model_of(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def server_conf(conf: GatewayConfig, source: Optional[str] = None):
    """The :class:`ServerConf` that the ``server:`` section describes."""
    from ...server.configuration import ServerConf

    return ServerConf.from_dict(dict(conf.server), path=source)


def server_section_problems(conf: GatewayConfig) -> list[ConfigProblem]:
    """Check the ``server:`` section against :class:`ServerConf`; problems named by path."""
    from ...server.configuration import ConfigError

    try:
        server_conf(conf)
    except ConfigError as e:
        where = f"server.{e.field}" if e.field else "server"
        return [ConfigProblem(where, e.problem)]
    return []

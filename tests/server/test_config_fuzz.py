"""Property-based checks of the server configuration loader: whatever YAML it is
given, it returns a validated ``ServerConf`` or raises one ``ConfigError`` naming
the field at fault (or the file, for a document that is not a mapping), never
another exception or a traceback."""

from __future__ import annotations

import dataclasses

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from propylon.server.configuration import ConfigError, ServerConf

FIELDS = [f.name for f in dataclasses.fields(ServerConf) if f.name != "source"]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.binary(max_size=20),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=20))


def dumped(mapping: dict) -> tuple[str, dict]:
    """The mapping as YAML text, and the mapping that text stands for: YAML does not
    give every string back (a U+0085 line break in a key reads as a space)."""
    text = yaml.safe_dump(mapping, allow_unicode=True)
    return text, yaml.safe_load(text) or {}


def load(text: str) -> ServerConf | ConfigError:
    try:
        return ServerConf.from_yaml(text, path="fuzz.yaml")
    except ConfigError as e:
        return e


@FUZZ
@given(st.text(max_size=300))
def test_any_text_gives_a_conf_or_a_config_error(text):
    result = load(text)
    if isinstance(result, ConfigError):
        assert str(result).startswith("fuzz.yaml: ")
    else:
        result.validate()


@FUZZ
@given(st.dictionaries(keys, values, max_size=6))
def test_a_bad_value_is_reported_with_its_field(mapping):
    text, mapping = dumped(mapping)
    result = load(text)
    if isinstance(result, ConfigError):
        # Only a mapping was given, so the error is about one of its keys.
        assert result.field in {str(k) for k in mapping}, result
        assert f"field '{result.field}'" in str(result)
    else:
        for key, value in mapping.items():
            assert getattr(result, key) == value


@FUZZ
@given(st.sampled_from(FIELDS), values)
def test_each_field_with_any_value(name, value):
    text, loaded = dumped({name: value})
    value = loaded[name]
    result = load(text)
    if isinstance(result, ConfigError):
        assert result.field == name, result
    else:
        assert getattr(result, name) == value


def test_known_bad_values_name_their_field():
    cases = {"threads: 0": "threads", "threads: true": "threads", "threads: 1.5": "threads",
             "pid_file: ''": "pid_file", "max_retries: -1": "max_retries", "thread: 2": "thread",
             "user: \"a\\0b\"": "user", "upgrade_sock: [1]": "upgrade_sock"}
    for text, field in cases.items():
        result = load(text)
        assert isinstance(result, ConfigError) and result.field == field, (text, result)

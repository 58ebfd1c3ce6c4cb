"""BodySizeLimit: declared lengths and streamed counting, 413 as a propylon Error."""

import pytest

from propylon.errors import Error, ErrorSource, ErrorType
from propylon.security import BodySizeLimit


@pytest.mark.parametrize(
    "value, ok",
    [
        (None, True),
        ("0", True),
        ("100", True),
        (b"100", True),
        (" 99 ", True),
        (100, True),
        ("101", False),
        ("150", False),
        (101, False),
        (-1, False),
        ("-5", False),
        ("1e3", False),
        ("12, 12", False),
        ("", False),
        ("١٢", False),  # non-ASCII digits
    ],
)
def test_check_content_length(value, ok):
    assert BodySizeLimit(100).check_content_length(value) is ok


def test_add_counts_until_the_limit_then_raises_413():
    limit = BodySizeLimit(100)
    limit.add(60)
    limit.add(40)  # exactly at the limit is fine
    assert limit.received == 100 and limit.remaining == 0
    with pytest.raises(Error) as info:
        limit.add(1)
    err = info.value
    assert err.etype == ErrorType.http_status(413)
    assert err.etype.code == 413
    assert err.esource is ErrorSource.DOWNSTREAM
    assert "100 bytes" in str(err)


def test_reset_and_zero_limit():
    limit = BodySizeLimit(0)
    limit.add(0)
    with pytest.raises(Error):
        limit.add(1)
    limit.reset()
    assert limit.received == 0
    with pytest.raises(ValueError):
        BodySizeLimit(-1)

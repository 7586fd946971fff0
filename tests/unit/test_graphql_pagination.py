"""Cursors round-trip and reject what this API did not issue; page sizes are bounded."""

from __future__ import annotations

import base64

import pytest

from read_api.errors import BadInput
from read_api.pagination import PageRequest, decode_cursor, encode_cursor


def test_a_cursor_round_trips_its_key() -> None:
    assert decode_cursor(encode_cursor(["SN-1", 7]), 2) == ["SN-1", "7"]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        base64.urlsafe_b64encode(b'["SN-1"]').decode(),  # not ours
        encode_cursor(["a", "b"]),  # another connection's shape
    ],
)
def test_foreign_cursors_are_bad_input(cursor: str) -> None:
    with pytest.raises(BadInput):
        decode_cursor(cursor, 1)


def test_page_sizes_default_and_are_capped() -> None:
    assert PageRequest().size(100) == 20
    assert PageRequest(first=100).size(100) == 100
    with pytest.raises(BadInput):
        PageRequest(first=101).size(100)
    with pytest.raises(BadInput):
        PageRequest(last=-1).size(100)
    assert PageRequest(last=3).backwards
    assert not PageRequest(first=3, before="x").backwards

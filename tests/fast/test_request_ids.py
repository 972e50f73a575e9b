"""Request ids: which client ids are kept, and what goes on to the model server."""

from __future__ import annotations

import re

from serving.gateway.access.request_ids import (
    MAX_METADATA_CHARS,
    METADATA_KEY,
    request_id,
    request_id_metadata,
)


def test_plain_tokens_are_kept_and_anything_else_is_replaced():
    assert request_id("client-7.a:b_c") == "client-7.a:b_c"
    for insane in (None, "", "a b", 'x"y', "é", "x" * 129):
        assert re.fullmatch(r"[0-9a-f]{32}", request_id(insane))


def test_a_call_carries_each_id_once_within_the_metadata_bound():
    assert request_id_metadata([]) == ()
    assert request_id_metadata(["a", "b", "a"]) == ((METADATA_KEY, "a,b"),)
    many = [f"{index:0128d}" for index in range(100)]  # 100 ids of 128 characters: 12.9 kB
    ((key, value),) = request_id_metadata(many)
    assert key == METADATA_KEY and len(value) <= MAX_METADATA_CHARS
    kept = value.split(",")
    assert kept == many[:len(kept)]  # whole ids, in order
    assert len(value) + len(",") + len(many[len(kept)]) > MAX_METADATA_CHARS  # as many as fit: 31 here

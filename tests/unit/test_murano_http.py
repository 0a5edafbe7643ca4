"""Parsing and encoding helpers of the HTTP device channel (no sockets)."""

from __future__ import annotations

import itertools
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from otatui.murano.backoff import Backoff
from otatui.murano.channel import TimedValue
from otatui.murano.content import parse_content_info, parse_content_list
from otatui.murano.device_api import parse_last_modified, scrub
from otatui.murano.form import FormError, alias_query, decode_form, encode_form
from otatui.murano.http import HttpChannel
from otatui.murano.record import encode_record, parse_conflicts, split_for_record

MANIFEST = '{"version":"1.2.4","name":"fw & co","type":"FILE","payload":"a+b%20c.bin"}'


# -- form encoding -------------------------------------------------------------------------


def test_encode_form_percent_encodes_everything_reserved() -> None:
    body = encode_form([("otau_in", '{"a": "x&y=z+%"}')])
    assert body == "otau_in=%7B%22a%22%3A%20%22x%26y%3Dz%2B%25%22%7D"


def test_decode_form_round_trips_a_manifest_exactly() -> None:
    assert decode_form(encode_form([("config_otau", MANIFEST)])) == [("config_otau", MANIFEST)]


def test_decode_form_reads_plus_as_space_and_keeps_order() -> None:
    assert decode_form("b=one+two&a=%C3%A9&c") == [("b", "one two"), ("a", "é"), ("c", "")]


def test_decode_form_refuses_invalid_utf8() -> None:
    with pytest.raises(FormError):
        decode_form("a=%FF%FE")


@given(st.lists(st.tuples(st.text(min_size=1), st.text()), max_size=5))
def test_form_round_trip_any_text(pairs: list[tuple[str, str]]) -> None:
    body = encode_form(pairs)
    assert decode_form(body) == pairs
    # Any standard form decoder reads it the same way.
    assert parse_qsl(body, keep_blank_values=True, errors="strict") == pairs


def test_alias_query_is_bare_names() -> None:
    assert alias_query(["config_otau", "otau_in"]) == "config_otau&otau_in"
    with pytest.raises(ValueError):
        alias_query([])


# -- Last-Modified -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("1408088412", 1408088412.0),
        (" 1408088412 ", 1408088412.0),
        ("Fri, 15 Jun 2018 19:04:13 GMT", 1529089453.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("not a date", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_last_modified_both_formats(header: str | None, expected: float | None) -> None:
    assert parse_last_modified(header) == expected


# -- record ---------------------------------------------------------------------------------


def _tv(alias: str, value: str, ts: float) -> TimedValue:
    return TimedValue(alias=alias, value=value, timestamp=ts)


def test_split_for_record_cuts_same_second_values_of_one_alias_in_order() -> None:
    recs = [
        _tv("otau_in", "INIT", 100.1),
        _tv("otau_in", "TEST", 100.9),  # same second as INIT → next group
        _tv("other", "x", 100.2),  # other alias, no conflict
        _tv("otau_in", "TEST_SUCCESS", 101.0),
        _tv("otau_in", "DOWNLOAD", 101.5),  # same second as TEST_SUCCESS
    ]
    groups = split_for_record(recs)
    assert [[r.value for r in g] for g in groups] == [
        ["INIT"],
        ["TEST", "x", "TEST_SUCCESS"],
        ["DOWNLOAD"],
    ]
    assert [r for g in groups for r in g] == recs  # nothing lost, order kept
    for group in groups:
        encode_record(group)  # each group is a valid request


def test_split_for_record_empty() -> None:
    assert split_for_record([]) == []


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.floats(min_value=0, max_value=20)),
        max_size=30,
    )
)
def test_split_for_record_groups_are_valid_and_complete(items: list[tuple[str, float]]) -> None:
    recs = [_tv(a, str(i), ts) for i, (a, ts) in enumerate(items)]
    groups = split_for_record(recs)
    assert [r for g in groups for r in g] == recs
    for group in groups:
        for alias in ("a", "b"):
            seconds = sorted(int(r.timestamp) for r in group if r.alias == alias)
            assert all(b - a >= 1 for a, b in itertools.pairwise(seconds))


def test_encode_record_body_layout() -> None:
    body = encode_record(
        [
            _tv("otau_in", '{"s":"INIT"}', 1700000000.7),
            _tv("x", "1", 5),
            _tv("otau_in", "b", 1700000001),
        ]
    )
    assert body == ("alias=otau_in&1700000000=%7B%22s%22%3A%22INIT%22%7D&1700000001=b&alias=x&5=1")


def test_encode_record_refuses_same_second() -> None:
    with pytest.raises(ValueError, match="otau_in"):
        encode_record([_tv("otau_in", "a", 1.0), _tv("otau_in", "b", 1.5)])


def test_parse_conflicts() -> None:
    assert parse_conflicts("otau_in=1700000000&otau_in=1700000001&x=5") == {
        "otau_in": [1700000000.0, 1700000001.0],
        "x": [5.0],
    }
    assert parse_conflicts("") == {}
    assert parse_conflicts("a=zz") == {"a": []}
    assert parse_conflicts("otau_in=1700000000,1700000000.5") == {
        "otau_in": [1700000000.0, 1700000000.5]
    }


# -- content ----------------------------------------------------------------------------------


def test_parse_content_list_lines() -> None:
    assert parse_content_list("MANIFEST\r\nfw_20150519_rev01b.bin\n\n") == [
        "MANIFEST",
        "fw_20150519_rev01b.bin",
    ]
    assert parse_content_list("") == []


@pytest.mark.parametrize(
    ("line", "ctype", "size", "updated", "description"),
    [
        (
            "image/png,23427,1462500951,Boot splash screen",
            "image/png",
            23427,
            1462500951,
            "Boot splash screen",
        ),
        ("application/gzip,691529,1513931066,", "application/gzip", 691529, 1513931066, ""),
        ("application/gzip,691529,1513931066,\n", "application/gzip", 691529, 1513931066, ""),
        ("application/gzip,691529,1513931066", "application/gzip", 691529, 1513931066, ""),
        ("a/b,1,2,one, two, three", "a/b", 1, 2, "one, two, three"),
        ('a/b,1,2,"say ""hi"", ok"', "a/b", 1, 2, 'say "hi", ok'),
    ],
)
def test_parse_content_info(
    line: str, ctype: str, size: int, updated: float, description: str
) -> None:
    info = parse_content_info(line)
    assert (info.content_type, info.size, info.updated, info.description) == (
        ctype,
        size,
        updated,
        description,
    )


@pytest.mark.parametrize(
    "bad", ["", "image/png,abc,1,", "image/png", "a,1,2,x\nb,1,2,y", "a,-1,2,"]
)
def test_parse_content_info_refuses_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_content_info(bad)


# -- backoff ----------------------------------------------------------------------------------


def test_backoff_full_jitter_is_bounded_and_grows() -> None:
    b = Backoff(base=1.0, cap=60.0, rng=lambda: 1.0)  # always the ceiling
    assert [b.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    b.reset()
    assert b.next_delay() == 1
    zero = Backoff(base=1.0, cap=60.0, rng=lambda: 0.0)
    assert zero.next_delay() == 0
    huge = Backoff(base=1.0, cap=60.0, rng=lambda: 1.0, attempt=10_000)
    assert huge.next_delay() == 60


def test_backoff_real_jitter_stays_within_ceiling() -> None:
    b = Backoff(base=0.5, cap=4.0)
    for attempt in range(1, 50):
        delay = b.next_delay()
        assert 0 <= delay <= b.ceiling(attempt) <= 4.0


def test_backoff_refuses_bad_settings() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0)
    with pytest.raises(ValueError):
        Backoff(base=2, cap=1)


# -- secrets ---------------------------------------------------------------------------------


async def test_scrub_and_repr_hide_the_token() -> None:
    token = "Ed9GHsPnc2gyZsOFoShPhxj80sRlzH9E1vZCTK9y"
    assert scrub(f"error at {token}!", token) == "error at ***!"
    async with httpx.AsyncClient() as client:
        channel = HttpChannel(client, "http://127.0.0.1:1", token)
        assert token not in repr(channel)
        assert token not in str(channel.state)
        assert "X-Exosite-CIK" not in client.headers

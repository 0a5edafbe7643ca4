"""The last line of defence: every configured secret becomes `***` in output text, whether the
redactor searches per secret (few) or scans windows per secret length (a big fleet)."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from otatui.engine.events import SessionError
from otatui.engine.jsonlines import event_line
from otatui.engine.redaction import REDACTED, SCAN_ABOVE, Redactor

TOKEN = st.text(alphabet=string.ascii_letters + string.digits, min_size=8, max_size=40)


def many(secrets: list[str]) -> list[str]:
    """Enough filler secrets to switch the redactor to scanning."""
    return secrets + [f"filler-secret-{i:04d}-zz" for i in range(SCAN_ABOVE + 1)]


@settings(max_examples=200, deadline=None)
@given(st.lists(TOKEN, min_size=1, max_size=5), st.lists(st.text(max_size=30), max_size=6))
def test_no_secret_survives_either_strategy(secrets: list[str], pieces: list[str]) -> None:
    text = "".join(p + s for p, s in zip(pieces, secrets * 3, strict=False)) + "".join(secrets)
    for redactor in (Redactor(secrets), Redactor(many(secrets))):
        out = redactor(text)
        for secret in secrets:
            assert secret not in out
        assert REDACTED in out


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abc -", max_size=60))
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert Redactor(many(["XYZXYZXYZ"]))(text) == text


def test_scanning_hides_each_hit_and_merges_overlaps() -> None:
    redactor = Redactor(many(["abcdefgh", "efghijkl"]))
    assert redactor("x abcdefgh y") == f"x {REDACTED} y"
    assert redactor("x abcdefghijkl y") == f"x {REDACTED} y"  # overlapping: one mark
    assert redactor("abcdefgh-abcdefgh") == f"{REDACTED}-{REDACTED}"
    assert redactor("abcdefgh") == REDACTED


def test_event_lines_of_a_big_fleet_hold_no_token() -> None:
    tokens = [f"{i:040x}" for i in range(1000)]
    redactor = Redactor(tokens)
    event = SessionError(device="d", message=f"refused {tokens[737]} and {tokens[3]}")
    line = event_line(event, redactor)
    assert tokens[737] not in line and tokens[3] not in line
    assert line.count(REDACTED) == 2
    assert event_line(event, tokens) == line

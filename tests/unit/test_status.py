"""Status and StatusReport: the exact `otau_in` text a device writes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otatui.otau.status import Status, StatusReport

SCHEMA_ORDER = [
    "INIT", "TEST", "TEST_STEP", "TEST_ERROR", "TEST_SUCCESS", "DOWNLOAD", "DOWNLOAD_STEP",
    "DOWNLOAD_SUCCESS", "DOWNLOAD_ERROR", "INSTALL", "INSTALL_STEP", "INSTALL_ABORTED",
    "INSTALL_ERROR", "INSTALL_SUCCESS", "INSTALLED_VERSION",
]  # fmt: skip


def test_all_fifteen_statuses_of_the_schema() -> None:
    assert [s.value for s in Status] == SCHEMA_ORDER


def test_report_is_the_exact_text_of_the_schema_example() -> None:
    report = StatusReport(
        "1.2.4", Status.TEST_ERROR, "Not enough memory (required: 1024MB, available: 512MB)."
    )
    assert report.to_json() == (
        '{"version":"1.2.4","status":"TEST_ERROR",'
        '"message":"Not enough memory (required: 1024MB, available: 512MB)."}'
    )


def test_non_ascii_message_is_kept_as_text() -> None:
    assert (
        '"message":"Température ok"' in StatusReport("1", Status.TEST, "Température ok").to_json()
    )


@given(st.text(), st.sampled_from(list(Status)), st.text())
def test_round_trip(version: str, status: Status, message: str) -> None:
    report = StatusReport(version, status, message)
    assert StatusReport.from_json(report.to_json()) == report
    assert json.loads(report.to_json()) == {
        "version": version,
        "status": status.value,
        "message": message,
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nope", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"status":"INIT"}', "version"),
        ('{"version":"1","status":"DONE"}', "unknown status"),
        ('{"version":"1","status":"INIT","message":3}', "message"),
    ],
)
def test_bad_reports_are_refused_with_one_line(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as exc:
        StatusReport.from_json(text)
    assert "\n" not in str(exc.value)


def test_classification() -> None:
    assert Status.INSTALL_ABORTED.is_final and Status.INSTALL_ABORTED.is_error
    assert Status.INSTALLED_VERSION.is_final and not Status.INSTALLED_VERSION.is_error
    assert {s for s in Status if s.is_step} == {
        Status.TEST_STEP,
        Status.DOWNLOAD_STEP,
        Status.INSTALL_STEP,
    }
    assert all(s.meaning for s in Status)

"""DOWNLOAD_STEP rate limiting: a step that adds no bytes never repeats the last one."""

from __future__ import annotations

from otatui.otau.progress import DownloadLimiter, DownloadStep, ProgressPolicy

FAST = ProgressPolicy(min_interval=0.2, min_percent=10)


def test_zero_bytes_again_once_the_total_is_known_is_not_a_new_step() -> None:
    limiter = DownloadLimiter(FAST)
    assert limiter.offer(DownloadStep(0, 0, None), 0.0) == DownloadStep(0, 0, None)
    assert limiter.offer(DownloadStep(0, 0, 1000), 0.4) is None  # same progress, later
    assert limiter.flush(5.0) == []  # and it is not sent later either
    assert limiter.offer(DownloadStep(0, 500, 1000), 0.6) == DownloadStep(0, 500, 1000)


def test_completion_still_goes_out_once() -> None:
    limiter = DownloadLimiter(FAST)
    limiter.offer(DownloadStep(0, 0, 10), 0.0)
    assert limiter.complete(0, 0.01) == DownloadStep(0, 1, 1)
    assert limiter.complete(0, 0.02) is None


def test_more_bytes_with_an_unknown_total_go_out_after_the_interval() -> None:
    limiter = DownloadLimiter(FAST)
    limiter.offer(DownloadStep(0, 0, None), 0.0)
    assert limiter.offer(DownloadStep(0, 10, None), 0.1) is None
    assert limiter.flush(0.3) == [DownloadStep(0, 10, None)]
    assert limiter.offer(DownloadStep(0, 10, None), 1.0) is None

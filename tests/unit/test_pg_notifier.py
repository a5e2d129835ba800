"""The PostgreSQL adapter's rate-limited feed notifications (`storage/postgres/notify.py`)."""

from __future__ import annotations

import threading
import time

from jobcollection.storage.postgres.notify import Notifier


class Sends:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.sent = threading.Event()

    def __call__(self) -> None:
        self.times.append(time.monotonic())
        self.sent.set()


def test_the_first_write_notifies_itself_the_next_ones_within_the_gap_do_not() -> None:
    sends = Sends()
    notifier = Notifier(sends, gap_s=10.0)
    assert notifier.claim()
    assert not notifier.claim()
    assert not notifier.claim()
    assert sends.times == []
    notifier.close()


def test_quiet_writes_are_covered_by_one_trailing_notification_after_the_gap() -> None:
    sends = Sends()
    notifier = Notifier(sends, gap_s=0.05)
    assert notifier.claim()
    start = time.monotonic()
    for _ in range(5):
        assert not notifier.claim()
        notifier.owe()
    assert sends.sent.wait(5)
    time.sleep(0.1)
    assert len(sends.times) == 1  # one for the five
    assert sends.times[0] - start >= 0.04
    assert notifier.claim()  # the gap has passed since
    notifier.close()


def test_a_write_owing_after_the_trailing_notification_went_out_gets_another() -> None:
    sends = Sends()
    notifier = Notifier(sends, gap_s=0.02)
    assert notifier.claim()
    notifier.owe()
    assert sends.sent.wait(5)
    sends.sent.clear()
    assert not notifier.claim()  # the trailing one just went out
    notifier.owe()
    assert sends.sent.wait(5)
    assert len(sends.times) == 2
    notifier.close()


def test_close_sends_what_is_owed_at_once_and_later_writes_notify_themselves() -> None:
    sends = Sends()
    notifier = Notifier(sends, gap_s=60.0)
    assert notifier.claim()
    notifier.owe()
    notifier.close()
    assert len(sends.times) == 1
    assert notifier.claim()
    notifier.owe()  # (a write racing close: sent at once)
    assert len(sends.times) == 2


def test_a_failing_send_is_only_logged() -> None:
    def fail() -> None:
        raise OSError("down")

    notifier = Notifier(fail, gap_s=0.01)
    assert notifier.claim()
    notifier.owe()
    time.sleep(0.05)
    notifier.close()


def test_hurry_sends_what_is_owed_before_the_gap_ends() -> None:
    sends = Sends()
    notifier = Notifier(sends, gap_s=60.0)
    assert notifier.claim()
    notifier.hurry()  # nothing owed: nothing sent
    assert not notifier.claim()
    notifier.owe()
    notifier.hurry()
    assert sends.sent.wait(5)
    assert len(sends.times) == 1
    notifier.close()

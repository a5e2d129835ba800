"""The private loop behind blocking queues and remote collections outlives what it runs."""

from __future__ import annotations

import logging

import pytest

from jobcollection.api._portal import Portal


@pytest.mark.parametrize("kind", [SystemExit, KeyboardInterrupt])
def test_the_loop_survives_a_callback_that_raises_a_base_exception(
    kind: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    portal = Portal("test-portal")
    try:

        def escape() -> None:
            raise kind()

        with caplog.at_level(logging.ERROR), pytest.raises(kind):
            portal.call(escape)
        assert portal.call(lambda: 42) == 42  # answered: the loop still runs
        assert "the loop goes on" in caplog.text
    finally:
        portal.close()
    assert not portal.loop.is_running()

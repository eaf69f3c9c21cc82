"""The dispatcher asks for one open file per request in flight (and some to
spare), raises the hard limit where it may, and where it may not, holds
fewer in flight (the database must still open its files) and says in the
log which limit to raise."""

from __future__ import annotations

import logging
import resource

import pytest

from jobs.engine import dispatch


class Limits:
    """The process's RLIMIT_NOFILE, with or without the right to raise the hard one."""

    def __init__(self, soft: int, hard: int, *, privileged: bool) -> None:
        self.soft, self.hard, self.privileged = soft, hard, privileged

    def get(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def set(self, which: int, limits: tuple[int, int]) -> None:
        soft, hard = limits
        if (hard > self.hard and not self.privileged) or soft > hard:
            raise ValueError("not allowed")
        self.soft, self.hard = soft, hard


@pytest.fixture
def limits(monkeypatch):
    def make(soft: int, hard: int, *, privileged: bool) -> Limits:
        fake = Limits(soft, hard, privileged=privileged)
        monkeypatch.setattr(resource, "getrlimit", fake.get)
        monkeypatch.setattr(resource, "setrlimit", fake.set)
        return fake

    return make


def test_the_soft_limit_rises_to_what_the_requests_in_flight_need(limits, caplog):
    fake = limits(1024, 1 << 20, privileged=False)
    assert dispatch.open_file_room(20_000) == 20_000
    assert fake.soft == 20_000 + dispatch.OPEN_FILES_BESIDES_SOCKETS
    assert not caplog.records


def test_a_privileged_process_raises_the_hard_limit_too(limits, caplog):
    fake = limits(20_000, 20_000, privileged=True)
    assert dispatch.open_file_room(20_000) == 20_000
    assert fake.soft == fake.hard == 20_000 + dispatch.OPEN_FILES_BESIDES_SOCKETS
    assert not caplog.records


def test_a_limit_that_cannot_be_reached_is_named_in_the_log(limits, caplog):
    fake = limits(1024, 20_000, privileged=False)
    with caplog.at_level(logging.WARNING, logger="jobs.engine.dispatch"):
        room = dispatch.open_file_room(20_000)
    assert fake.soft == 20_000  # as far as it goes
    assert room == 20_000 - dispatch.OPEN_FILES_BESIDES_SOCKETS
    (record,) = caplog.records
    assert "FLEX_MAX_IN_FLIGHT=20000 needs about 20256 open files" in record.getMessage()
    assert "hard limit 20000): it holds at most 19744 requests in flight" in record.getMessage()
    assert "ulimit -Hn" in record.getMessage()

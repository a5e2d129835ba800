"""`<root>.readyTypes`: a type is published while it has ready jobs, and only then."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from ddp_harness import DdpClient, serving

from jobcollection import Job, JobCollection
from jobcollection.server import Server


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    with JobCollection("queue", db=db) as collection:
        collection.start_job_server()
        yield collection


def _data(messages: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(m["msg"], m.get("id")) for m in messages if m.get("collection") == "queue.readyTypes"]


def test_types_come_and_go_with_their_ready_jobs(jc: JobCollection) -> None:
    jc.allow(worker="anyone")
    Job(jc, "mail", {}).save()
    with serving(Server(jc)) as url, DdpClient(url) as client:
        client.send(
            {"msg": "sub", "id": "b", "name": "queue.readyTypes", "params": [["mail", "sms"]]}
        )
        first = client.recv_until(lambda m: m.get("msg") == "ready")
        assert _data(first) == [("added", "mail")]
        assert first[0]["fields"] == {}
        Job(jc, "sms", {}).save()
        Job(jc, "sms", {}).save()  # a second ready sms job: nothing new to say
        Job(jc, "other", {}).save()  # not watched
        assert _data([client.recv()]) == [("added", "sms")]
        assert jc.get_work("sms", max_jobs=1)  # one sms job left: still ready
        assert jc.get_work("mail")  # the last mail job claimed
        assert _data([client.recv()]) == [("removed", "mail")]
        assert jc.get_work("sms")
        assert _data([client.recv()]) == [("removed", "sms")]
        client.send({"msg": "unsub", "id": "b"})
        assert client.recv() == {"msg": "nosub", "id": "b"}


@pytest.mark.parametrize(
    ("params", "code"),
    [([], 400), (["mail"], 400), ([["mail", 3]], 400), ([["mail"], {}], 400)],
)
def test_bad_params_are_refused(jc: JobCollection, params: list[object], code: int) -> None:
    jc.allow(worker="anyone")
    with serving(Server(jc)) as url, DdpClient(url) as client:
        client.send({"msg": "sub", "id": "b", "name": "queue.readyTypes", "params": params})
        nosub = client.recv_until(lambda m: m.get("msg") == "nosub")[-1]
        assert nosub["error"]["error"] == code


def test_only_workers_and_admins_may_ring(jc: JobCollection) -> None:
    jc.allow(manager="anyone")  # managers follow jobs, not the doorbell
    with serving(Server(jc)) as url, DdpClient(url) as client:
        client.send({"msg": "sub", "id": "b", "name": "queue.readyTypes", "params": [["mail"]]})
        nosub = client.recv_until(lambda m: m.get("msg") == "nosub")[-1]
        assert nosub["error"]["error"] == 403
        assert nosub["error"]["reason"] == "Subscription not authorized"
        assert nosub["error"]["details"] == (  # the client did not log in
            "no user is logged in, and 'queue.readyTypes' needs one allowed under admin or worker"
        )


def _record_calls(monkeypatch: pytest.MonkeyPatch, method: str) -> list[list[str]]:
    """Wrap ``ReadyTypes.<method>`` (the engine's state behind the doorbell; it takes job
    types first): the types of each call, in order."""
    from jobcollection.engine.ready_types import ReadyTypes

    calls: list[list[str]] = []
    original = getattr(ReadyTypes, method)

    def spy(tracker: ReadyTypes, types: Iterable[str], *more: object) -> object:
        calls.append(sorted(types))
        return original(tracker, types, *more)

    monkeypatch.setattr(ReadyTypes, method, spy)
    return calls


def _messages_of(client: DdpClient, call_id: str, method: str, *params: object) -> list[Any]:
    """Call ``queue_<method>``; every message up to its `updated`."""
    call = {"msg": "method", "id": call_id, "method": f"queue_{method}", "params": list(params)}
    client.send(call)
    return client.recv_until(lambda m: m.get("msg") == "updated")


@contextmanager
def _bell_follower(jc: JobCollection) -> Iterator[DdpClient]:
    """A client of a server of ``jc`` (all allowed), subscribed to the doorbell for "mail"."""
    jc.allow(admin="anyone")
    with serving(Server(jc)) as url, DdpClient(url) as client:
        client.send({"msg": "sub", "id": "b", "name": "queue.readyTypes", "params": [["mail"]]})
        client.recv_until(lambda m: m.get("msg") == "ready")
        yield client


def test_without_followers_changes_no_longer_ring_the_bell(
    jc: JobCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    rechecked = _record_calls(monkeypatch, "recheck")
    with _bell_follower(jc) as client:
        client.call("queue_jobSave", _wire(Job(jc, "mail", {})))
        assert rechecked == [["mail"]]
        client.send({"msg": "unsub", "id": "b"})
        client.recv_until(lambda m: m.get("msg") == "nosub")
        client.call("queue_jobSave", _wire(Job(jc, "mail", {})))  # flushed before `updated`
        assert rechecked == [["mail"]]


def _wire(job: Job) -> dict[str, object]:
    from jobcollection.core import ejson
    from jobcollection.core.wire import doc_to_wire

    encoded: dict[str, object] = ejson.to_ejson(doc_to_wire(job.doc))
    return encoded


def test_a_save_lets_its_changes_out_first_and_a_claim_its_result(jc: JobCollection) -> None:
    """A waiting worker should hear of a new job as soon as possible (the saver can wait one
    message longer), and a worker's claim should reach it before the news of that claim."""
    with _bell_follower(jc) as client:
        saved = _messages_of(client, "save", "jobSave", _wire(Job(jc, "mail", {})))
        assert [m["msg"] for m in saved] == ["added", "result", "updated"]
        claimed = _messages_of(client, "w", "getWork", "mail")
        assert [m["msg"] for m in claimed] == ["result", "removed", "updated"]


def test_a_new_ready_job_rings_without_a_storage_read(
    jc: JobCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The change itself says the type gained a ready job; only a loss needs a look."""
    reads = _record_calls(monkeypatch, "_has_ready")
    with _bell_follower(jc) as client:
        reads.clear()  # the subscription's own first look
        saved = _messages_of(client, "s", "jobSave", _wire(Job(jc, "mail", {})))
        assert _data(saved) == [("added", "mail")]
        assert reads == []
        client.call("queue_jobSave", _wire(Job(jc, "mail", {})))  # still ready: no read either
        assert reads == []
        claimed = _messages_of(client, "w", "getWork", "mail")
        assert _data(claimed) == []  # one mail job is still ready
        assert reads == [["mail"]]
        claimed = _messages_of(client, "w2", "getWork", "mail")
        assert _data(claimed) == [("removed", "mail")]
        client.call("queue_jobSave", _wire(Job(jc, "mail", {}).delay(60_000)))  # not ready
        assert len(reads) == 2  # told "none ready", and nothing gained: nothing to look at


def test_a_job_readied_and_claimed_in_one_batch_is_looked_up(jc: JobCollection) -> None:
    """Both a gain and a loss in one batch: only storage can say what is left."""
    from jobcollection.engine.ready_types import ReadyNews, ReadyTypes

    tracker = ReadyTypes(jc.manager.storage, jc.manager.root)
    assert tracker.look(["mail"]) == {"mail": False}
    job = Job(jc, "mail", {}).save()
    assert job is not None
    assert jc.get_work("mail")  # claimed before the tracker heard of the save
    news = ReadyNews()
    news.note("ready")
    news.note("running")
    assert tracker.recheck({"mail": news}, {"mail"}) == {}  # nothing is ready: no false alarm

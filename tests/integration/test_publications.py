"""Publications against a real SQLite collection: initial documents, live changes from this and
other processes, permissions, user-defined publications, re-runs after login, flush ordering."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from jobcollection.api.collection import JobCollection
from jobcollection.core.ejson import Date
from jobcollection.core.permissions import ANONYMOUS, Caller
from jobcollection.server.meteor_error import MeteorError
from jobcollection.server.publications import ConnectionView, PublicationRegistry

ROOT = "pq"
COLL = f"{ROOT}.jobs"
ALICE = Caller("alice-id", "alice")
BOB = Caller("bob-id", "bob")


class Client:
    """A fake connection: collects the messages sent to it."""

    def __init__(self, registry: PublicationRegistry) -> None:
        self.messages: list[dict[str, Any]] = []
        self.view: ConnectionView = registry.connection(self.messages.append)

    def take(self) -> list[dict[str, Any]]:
        taken, self.messages[:] = list(self.messages), []
        return taken

    def kinds(self) -> list[tuple[str, str]]:
        return [(m["msg"], m["id"]) for m in self.take()]


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    with JobCollection(ROOT, db) as collection:
        collection.start_job_server()
        yield collection


@pytest.fixture
async def registry(jc: JobCollection) -> AsyncIterator[PublicationRegistry]:
    reg = PublicationRegistry([jc.manager], asyncio.get_running_loop())
    yield reg
    reg.close()


def _save(jc: JobCollection, job_type: str, **data: Any) -> str:
    job_id = jc.job(job_type, data).retry(3, wait=0).save()
    assert job_id is not None
    return job_id


async def _until(client: Client, predicate: Any, timeout_s: float = 10.0) -> float:
    """Let the loop run until ``predicate(client.messages)``; seconds waited."""
    start = time.monotonic()
    while not predicate(client.messages):
        assert time.monotonic() - start < timeout_s, f"no such message in {client.messages}"
        await asyncio.sleep(0.001)
    return time.monotonic() - start


async def test_initial_documents_follow_the_selector(
    jc: JobCollection, registry: PublicationRegistry
) -> None:
    jc.allow(admin="anyone")
    a1, a2, b1 = _save(jc, "a", n=1), _save(jc, "a", n=2), _save(jc, "b", n=3)
    client = Client(registry)
    await client.view.subscribe("s1", COLL, [{"type": "a"}], ANONYMOUS)
    messages = client.take()
    assert [(m["msg"], m["collection"], m["id"]) for m in messages] == [
        ("added", COLL, a1),
        ("added", COLL, a2),
    ]
    fields = messages[0]["fields"]
    assert "_id" not in fields
    assert "_private" not in fields
    assert fields["type"] == "a"
    assert fields["data"] == {"n": 1}
    assert fields["log"][0]["message"] == "Constructed"
    assert isinstance(fields["created"], Date)  # wire form: times are EJSON dates
    assert isinstance(fields["log"][0]["time"], Date)

    await client.view.subscribe("s2", COLL, [{"_id": {"$in": [b1, a1]}}], ANONYMOUS)
    assert client.kinds() == [("added", b1)]  # a1 is already on the client
    await client.view.subscribe("s3", COLL, [], ANONYMOUS)
    assert client.take() == []  # everything is on the client already


async def test_private_is_never_published_and_scrub_applies(
    jc: JobCollection, registry: PublicationRegistry
) -> None:
    jc.allow(admin="anyone")
    job_id = _save(jc, "p", secret="s3cr3t")
    with jc.manager.storage.write(ROOT) as tx:
        tx.update([job_id], {"_private": {"owner": "server"}})
    jc.manager.scrub = lambda doc: {**doc, "data": {"hidden": True}}
    client = Client(registry)
    await client.view.subscribe("s", COLL, [], ANONYMOUS)
    (message,) = client.take()
    assert "_private" not in message["fields"]
    assert message["fields"]["data"] == {"hidden": True}

    with jc.manager.storage.write(ROOT) as tx:  # a change of _private alone sends nothing
        tx.update([job_id], {"_private": {"owner": "someone else"}})
    await client.view.flush()
    assert client.take() == []


async def test_claim_changes_and_clears_fields(
    jc: JobCollection, registry: PublicationRegistry
) -> None:
    jc.allow(manager="anyone")
    job_id = _save(jc, "w")
    client = Client(registry)
    await client.view.subscribe("s", COLL, [], ANONYMOUS)
    client.take()

    (work,) = jc.get_work("w", work_timeout=60_000)
    await client.view.flush()
    (message,) = client.take()
    assert message["msg"] == "changed"
    assert message["id"] == job_id
    assert message["fields"]["status"] == "running"
    assert message["fields"]["workTimeout"] == 60_000
    assert isinstance(message["fields"]["expiresAfter"], Date)
    assert "cleared" not in message
    assert {"log", "runId", "retries", "retried"} <= set(message["fields"])
    assert "type" not in message["fields"]  # unchanged fields are not resent

    assert work.fail({"reason": "try again"})
    await client.view.flush()
    (message,) = client.take()
    assert message["fields"]["failures"][0]["reason"] == "try again"

    (again,) = jc.get_work("w")  # no work timeout: the claim unsets workTimeout, expiresAfter
    await client.view.flush()
    (message,) = client.take()
    assert message["fields"]["status"] == "running"
    assert sorted(message["cleared"]) == ["expiresAfter", "workTimeout"]
    assert client.view.box.client_fields(COLL, job_id) is not None

    assert again.done()  # the completed job keeps its runId: nothing to clear
    await client.view.flush()
    (message,) = client.take()
    assert message["fields"]["status"] == "completed"
    assert "cleared" not in message
    fields = client.view.box.client_fields(COLL, job_id)
    assert fields is not None
    assert fields["runId"] == again.run_id


async def test_remove_and_leaving_the_selector_send_removed(
    jc: JobCollection, registry: PublicationRegistry
) -> None:
    jc.allow(admin="anyone")
    stay, leave, gone = _save(jc, "x"), _save(jc, "x"), _save(jc, "y")
    client = Client(registry)
    await client.view.subscribe("ready", COLL, [{"status": "ready"}], ANONYMOUS)
    assert [k for k, _ in client.kinds()] == ["added"] * 3

    (work,) = jc.get_work("x")  # the oldest ready "x" job leaves status ready
    assert work.id == stay
    assert jc.cancel_jobs([gone])
    assert jc.remove_jobs([gone])
    await client.view.flush()
    assert client.kinds() == [("removed", stay), ("removed", gone)]
    assert client.view.box.client_fields(COLL, leave) is not None

    assert work.fail({"x": 1})  # retried: back to ready, so back in the selector
    await client.view.flush()
    ((kind, doc_id),) = client.kinds()
    assert (kind, doc_id) == ("added", stay)


async def test_refused_and_malformed_subscriptions_publish_nothing(
    jc: JobCollection, registry: PublicationRegistry
) -> None:
    _save(jc, "a")
    client = Client(registry)
    with pytest.raises(MeteorError) as refused:
        await client.view.subscribe("s", COLL, [], ANONYMOUS)
    assert refused.value.code == 403
    assert refused.value.reason == "Subscription not authorized"
    assert refused.value.details == (
        f"no user is logged in, and '{COLL}' needs one allowed under admin or manager"
    )

    jc.allow(worker="anyone", creator="anyone")  # neither lets one subscribe
    jc.allow(admin=["alice"])
    jc.deny(manager=lambda user_id, method, params: params == [{"type": "secret"}])
    for caller, params in [(BOB, []), (ALICE, [{"type": "secret"}])]:
        with pytest.raises(MeteorError) as refused:
            await client.view.subscribe("s", COLL, params, caller)
        assert refused.value.code == 403
        assert refused.value.details == (
            f"Authenticated user is not permitted to subscribe to '{COLL}'."
        )

    for bad in ([{"colour": "red"}], ["ready"], [{"status": "nope"}], [{}, {}]):
        with pytest.raises(MeteorError) as malformed:
            await client.view.subscribe("s", COLL, bad, ALICE)
        assert (malformed.value.code, malformed.value.reason) == (400, "Match failed")
        assert malformed.value.details

    with pytest.raises(MeteorError) as unknown:
        await client.view.subscribe("s", "nope.jobs", [], ALICE)
    assert (unknown.value.code, unknown.value.reason) == (404, "Subscription 'nope.jobs' not found")

    _save(jc, "a")
    await client.view.flush()
    assert client.messages == []
    assert client.view.subscriptions == []


async def test_user_defined_publication(jc: JobCollection, registry: PublicationRegistry) -> None:
    mine, other = _save(jc, "alice-work"), _save(jc, "bob-work")

    def by_user(user_id: str | None, *params: Any) -> dict[str, Any] | None:
        if params:
            raise MeteorError(400, "No params please")
        if user_id is None:
            return None
        return {"type": f"{user_id.removesuffix('-id')}-work"}

    registry.publish("myJobs", by_user)
    with pytest.raises(ValueError, match="exists already"):
        registry.publish("myJobs", by_user)
    with pytest.raises(ValueError, match="no collection"):
        registry.publish("other", by_user, collection="elsewhere")

    client = Client(registry)
    await client.view.subscribe("nothing", "myJobs", [], ANONYMOUS)  # None: ready, empty
    assert client.take() == []
    await client.view.subscribe("a", "myJobs", [], ALICE)
    assert client.kinds() == [("added", mine)]
    with pytest.raises(MeteorError) as error:
        await client.view.subscribe("b", "myJobs", [1], ALICE)
    assert error.value.reason == "No params please"

    later = _save(jc, "alice-work")
    _save(jc, "carol-work")
    await client.view.flush()
    assert client.kinds() == [("added", later)]

    client.view.unsubscribe("a")
    assert sorted(client.kinds()) == sorted([("removed", mine), ("removed", later)])
    assert other not in str(client.messages)


async def test_rerun_after_login_sends_only_the_difference(
    jc: JobCollection, registry: PublicationRegistry
) -> None:
    jc.allow(admin=["alice"])
    a, b, shared = _save(jc, "alice-work"), _save(jc, "bob-work"), _save(jc, "shared")
    registry.publish(
        "mine",
        lambda user_id: (
            None if user_id is None else {"type": {"$in": [f"{user_id[:-3]}-work", "shared"]}}
        ),
    )
    client = Client(registry)
    await client.view.subscribe("mine", "mine", [], ALICE)
    await client.view.subscribe("all", COLL, [{"_id": a}], ALICE)
    assert sorted(client.kinds()) == sorted([("added", a), ("added", shared)])

    failed = await client.view.rerun(BOB)  # alice logs out, bob logs in
    assert list(failed) == ["all"]
    assert failed["all"].code == 403
    assert sorted(client.kinds()) == sorted([("removed", a), ("added", b)])  # `shared` stays
    assert client.view.subscriptions == ["mine"]

    assert await client.view.rerun(BOB) == {}
    assert client.take() == []

    assert await client.view.rerun(ANONYMOUS) == {}
    assert sorted(client.kinds()) == sorted([("removed", b), ("removed", shared)])
    assert len(client.view.box) == 0


async def test_overlapping_subscriptions_and_close(
    jc: JobCollection, registry: PublicationRegistry
) -> None:
    jc.allow(admin="anyone")
    job_id = _save(jc, "o")
    client, other = Client(registry), Client(registry)
    await client.view.subscribe("s1", COLL, [], ANONYMOUS)
    await client.view.subscribe("s2", COLL, [{"type": "o"}], ANONYMOUS)
    await other.view.subscribe("s1", COLL, [], ANONYMOUS)
    assert client.kinds() == [("added", job_id)]
    assert other.kinds() == [("added", job_id)]

    jc.pause_jobs([job_id])
    await client.view.flush()
    assert [m["fields"]["status"] for m in client.take()] == ["paused"]  # one change, not two
    assert [m["fields"]["status"] for m in other.take()] == ["paused"]

    client.view.unsubscribe("s1")
    assert client.take() == []  # s2 still publishes it
    client.view.unsubscribe("s2")
    assert client.kinds() == [("removed", job_id)]
    client.view.unsubscribe("s2")  # unknown ids are ignored

    other.view.close()
    jc.resume_jobs([job_id])
    await other.view.flush()
    assert other.messages == []


async def test_flush_sends_what_a_call_caused_before_returning(
    jc: JobCollection, registry: PublicationRegistry
) -> None:
    jc.allow(admin="anyone")
    client = Client(registry)
    await client.view.subscribe("s", COLL, [], ANONYMOUS)
    job_id = _save(jc, "f")  # on the loop thread, as the dispatcher runs calls
    assert client.messages == []  # not yet: the loop has not run
    await client.view.flush()  # no loop iteration in between
    assert client.kinds() == [("added", job_id)]

    # A write on another thread (e.g. an in-process worker) is also flushed at once.
    await asyncio.to_thread(jc.pause_jobs, [job_id])
    await client.view.flush()
    assert [m["fields"]["status"] for m in client.take()] == ["paused"]

    # Without flush, the loop delivers on its own; nothing is delivered twice.
    jc.resume_jobs([job_id])
    await _until(client, lambda ms: len(ms) == 1)
    await asyncio.sleep(0.01)
    await client.view.flush()
    assert [m["fields"]["status"] for m in client.take()] == ["ready"]


_OTHER_PROCESS = textwrap.dedent(
    """
    import sys
    from jobcollection.api.collection import JobCollection
    with JobCollection(sys.argv[1], sys.argv[2]) as jc:
        assert jc.pause_jobs([sys.argv[3]])
        assert jc.job("from-child", {"pid": 1}).save()
    """
)


@pytest.mark.slow
async def test_a_change_written_by_another_process_arrives(
    jc: JobCollection, registry: PublicationRegistry, db: str
) -> None:
    jc.allow(admin="anyone")
    job_id = _save(jc, "p")
    client = Client(registry)
    await client.view.subscribe("s", COLL, [], ANONYMOUS)
    client.take()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _OTHER_PROCESS,
        ROOT,
        db,  # the file the `jc` fixture opened
        job_id,
        stderr=subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, stderr.decode()
    await _until(client, lambda ms: len(ms) == 2)
    paused, added = client.take()
    assert (paused["msg"], paused["id"], paused["fields"]["status"]) == (
        "changed",
        job_id,
        "paused",
    )
    assert (added["msg"], added["fields"]["type"]) == ("added", "from-child")


async def test_many_subscribers_share_one_read(
    jc: JobCollection, registry: PublicationRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    jc.allow(admin="anyone")
    job_id = _save(jc, "m")
    clients = [Client(registry) for _ in range(50)]
    for number, client in enumerate(clients):
        await client.view.subscribe(f"s{number}", COLL, [], ANONYMOUS)
        client.take()
    reads: list[int] = []
    live = jc.manager.live  # the engine's live queries re-read what changed
    read_changed = live._read_changed

    def counting(ids: Any, with_logs: bool) -> Any:
        reads.append(len(ids))
        return read_changed(ids, with_logs)

    monkeypatch.setattr(live, "_read_changed", counting)
    # Changes that come while the engine is busy form one batch: keep it busy (a consumer
    # that blocks) while both are written.
    entered, gate = threading.Event(), threading.Event()

    def hold(_: object) -> None:
        entered.set()
        gate.wait(10)

    busy = live.watch({"_id": "nothing"}, hold)
    assert await asyncio.to_thread(entered.wait, 10)
    jc.pause_jobs([job_id])
    jc.resume_jobs([job_id])
    # Both changes reach the engine before it is let go (on PostgreSQL they come back through
    # the feed's watcher, a moment after the commit).
    delivered = threading.Event()
    if not live.storage.settle(delivered.set):
        delivered.set()
    assert await asyncio.to_thread(delivered.wait, 10)
    gate.set()
    await clients[0].view.flush()
    busy.stop()
    assert reads == [1]
    for client in clients:
        (message,) = client.take()
        assert message["msg"] == "changed"
        assert "status" not in message["fields"]  # paused and resumed within one batch
        assert len(message["fields"]["log"]) > 1

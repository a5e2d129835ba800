"""Properties of the client's side of a DDP connection (`jobcollection.ddp.client`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobcollection.ddp import messages
from jobcollection.ddp.client import (
    Accepted,
    ClientConnection,
    Data,
    Handshake,
    Ignored,
    MethodsDone,
    Retry,
    SendPong,
    SubEnded,
    SubsReady,
)
from jobcollection.errors import ProtocolError

CALL_IDS = [str(n) for n in range(6)]


@st.composite
def call_traffic(draw: st.DrawFn) -> tuple[dict[str, bool], list[dict[str, object]]]:
    """Calls (id → wait_updated) and the server's results/updated for them, interleaved in any
    order, with duplicates and messages about calls never made."""
    ids = draw(st.lists(st.sampled_from(CALL_IDS), unique=True, max_size=5))
    waits = {call_id: draw(st.booleans()) for call_id in ids}
    replies: list[dict[str, object]] = []
    for call_id in ids:
        if draw(st.booleans()):
            replies.append(messages.result(call_id, call_id))
        if draw(st.booleans()):
            replies.append(messages.updated(call_id))
    extra = st.sampled_from([*CALL_IDS, "unknown"])
    replies += draw(st.lists(st.builds(lambda i: messages.result(i, "late"), extra), max_size=3))
    replies += draw(st.lists(st.builds(lambda i: messages.updated(i), extra), max_size=3))
    order = draw(st.permutations(range(len(replies))))
    return waits, [replies[i] for i in order]


@given(call_traffic())
def test_any_interleaving_of_results_and_updated_completes_each_call_exactly_once(
    traffic: tuple[dict[str, bool], list[dict[str, object]]],
) -> None:
    waits, replies = traffic
    conn = ClientConnection("s")
    for call_id, wait in waits.items():
        sent = conn.call(call_id, "m", [call_id], wait)
        assert sent == messages.method(call_id, "m", [call_id])
    completed: list[str] = []
    seen_result: set[str] = set()
    seen_updated: set[str] = set()
    for reply in replies:
        event = conn.receive(reply)
        if reply["msg"] == "result":
            seen_result.add(str(reply["id"]))
        else:
            seen_updated.update(reply["methods"])  # type: ignore[arg-type]
        if isinstance(event, MethodsDone):
            for state in event.calls:
                completed.append(state.id)
                assert state.id in seen_result  # never done without its result
                assert state.id in seen_updated or not waits[state.id]
                assert state.result is not None
        else:
            assert isinstance(event, Ignored)
    assert len(completed) == len(set(completed))  # each at most once
    for call_id, wait in waits.items():
        done = call_id in seen_result and (call_id in seen_updated or not wait)
        assert (call_id in completed) == done
        assert (call_id in conn.calls) == (not done)


@given(call_traffic())
def test_the_first_result_of_a_call_is_the_one_reported(
    traffic: tuple[dict[str, bool], list[dict[str, object]]],
) -> None:
    waits, replies = traffic
    conn = ClientConnection()
    for call_id in waits:
        conn.call(call_id, "m", [], False)
    first: dict[str, object] = {}
    for reply in replies:
        if reply["msg"] == "result":
            first.setdefault(str(reply["id"]), reply.get("result"))
        event = conn.receive(reply)
        if isinstance(event, MethodsDone):
            for state in event.calls:
                assert state.result is not None
                assert state.result["result"] == first[state.id]


def test_a_not_applied_result_completes_a_call_that_waits_for_updated() -> None:
    conn = ClientConnection()
    conn.call("1", "m", [], True)
    event = conn.receive(messages.error_result("1", messages.NOT_APPLIED_ERROR))
    assert isinstance(event, MethodsDone)
    assert event.calls[0].not_applied


def test_a_lost_connection_hands_back_every_outstanding_call() -> None:
    conn = ClientConnection()
    conn.call("1", "m", [], True)
    conn.call("2", "m", [], True)
    conn.receive(messages.result("1", "ok"))
    lost = {state.id: state for state in conn.lost()}
    assert set(lost) == {"1", "2"}
    assert lost["1"].result is not None
    assert lost["2"].result is None
    assert conn.calls == {}


@given(
    subs=st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3),
    events=st.lists(
        st.tuples(st.sampled_from(["ready", "nosub", "nosub-error"]), st.sampled_from("abcd")),
        max_size=8,
    ),
)
def test_subscriptions_become_ready_or_end_once(
    subs: list[str], events: list[tuple[str, str]]
) -> None:
    conn = ClientConnection()
    for sub_id in subs:
        assert conn.subscribe(sub_id, "pub", []) == {"msg": "sub", "id": sub_id, "name": "pub"}
    live = set(subs)
    ended: list[str] = []
    for kind, sub_id in events:
        if kind == "ready":
            event = conn.receive(messages.ready(sub_id))
            assert isinstance(event, SubsReady)
            assert event.ids == ([sub_id] if sub_id in live else [])
        else:
            error = messages.meteor_error(404, "gone") if kind == "nosub-error" else None
            event = conn.receive(messages.nosub(sub_id, error))
            if sub_id in live:
                assert event == SubEnded(sub_id, error)
                live.discard(sub_id)
                ended.append(sub_id)
            else:
                assert isinstance(event, Ignored)
    assert len(ended) == len(set(ended))
    assert conn.subs == live


def test_pings_data_and_errors_are_routed() -> None:
    conn = ClientConnection()
    assert conn.receive({"msg": "ping", "id": "p"}) == SendPong({"msg": "pong", "id": "p"})
    assert conn.receive({"msg": "ping"}) == SendPong({"msg": "pong"})
    added = messages.added("c", "1", {"a": 1})
    assert conn.receive(added) == Data(added)
    assert isinstance(conn.receive({"msg": "pong"}), Ignored)
    assert isinstance(conn.receive({"server_id": "0"}), Ignored)


@given(proposals=st.lists(st.sampled_from(["1", "pre2", "pre1", "2", None]), max_size=6))
def test_the_handshake_retries_each_spoken_version_at_most_once_then_gives_up(
    proposals: list[str | None],
) -> None:
    handshake = Handshake()
    tried = [handshake.version]
    for proposed in proposals:
        if proposed not in messages.VERSIONS or proposed in tried:
            with pytest.raises(ProtocolError, match="does not speak DDP version"):
                handshake.receive({"msg": "failed", "version": proposed})
            return
        outcome = handshake.receive({"msg": "failed", "version": proposed})
        assert isinstance(outcome, Retry)
        assert outcome.version in messages.VERSIONS
        assert outcome.version not in tried
        tried.append(outcome.version)
        assert handshake.connect_message() == messages.connect(outcome.version)
    accepted = handshake.receive({"msg": "connected", "session": "x"})
    assert accepted == Accepted("x", tried[-1])


def test_the_handshake_waits_past_server_id_and_reports_a_refusal() -> None:
    handshake = Handshake()
    assert handshake.receive({"server_id": "0"}) is None
    with pytest.raises(ProtocolError, match="refused the DDP handshake: nope"):
        handshake.receive({"msg": "error", "reason": "nope"})
    with pytest.raises(ProtocolError, match="proposes version '2'"):
        Handshake().receive({"msg": "failed", "version": "2"})

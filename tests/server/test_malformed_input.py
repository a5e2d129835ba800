"""Malformed values inside well-formed messages: each call is answered (400, naming the problem),
nothing is stored, nothing is logged as a crash, over DDP and over HTTP alike."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from ddp_harness import DdpClient, new_job_doc, serving

from jobcollection import JobCollection
from jobcollection.server.app import Server

BAD_BINARY = {"$binary": "abc"}  # not base64: 3 characters cannot be padded base64
HIGH, LOW = "@HIGH@", "@LOW@"  # placeholders for a lone surrogate escape in the JSON text


@pytest.fixture
def jc(db: str) -> Iterator[JobCollection]:
    with JobCollection("queue", db=db) as collection:
        collection.allow(admin="anyone")
        yield collection


@pytest.fixture
def url(jc: JobCollection) -> Iterator[str]:
    with serving(Server(jc)) as base:
        yield base


def _saves(doc_text: str) -> str:
    return '{"msg":"method","id":"c1","method":"queue_jobSave","params":[' + doc_text + "]}"


def _doc_with(**fields: Any) -> str:
    """A job document as JSON text; the placeholders become lone surrogate escapes
    (``\\ud800``, ``\\udc00``), which JSON allows but no UTF-8 text can hold."""
    text = json.dumps({**new_job_doc("t"), **fields})
    return text.replace(HIGH, "\\ud800").replace(LOW, "\\udc00")


def _ddp_answer(url: str, frame: str) -> list[dict[str, Any]]:
    with DdpClient(url) as client:
        client.send(frame)
        messages = client.recv_until(lambda m: m.get("msg") == "updated")
        assert client.call("queue_getJob", "nope") is None  # the connection lives on
    return messages


def _post(url: str, method: str, body: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/api/queue/{method}",
        data=body.encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _no_crash_logged(caplog: pytest.LogCaptureFixture) -> None:
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not crashes, [r.getMessage() for r in crashes]


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        (_doc_with(data={"blob": BAD_BINARY}), "$binary"),
        (_doc_with(type=HIGH), "surrogate"),
        (_doc_with(data={"x": ["ok", {"deep": f"a{LOW}b"}]}), "surrogate"),
        (_doc_with(data={HIGH: 1}), "surrogate"),  # in a key
        (_doc_with(type=f"{LOW}{HIGH}"), "surrogate"),  # a pair in the wrong order
    ],
)
def test_a_ddp_call_with_a_bad_value_is_answered_400(
    url: str, jc: JobCollection, caplog: pytest.LogCaptureFixture, params: str, problem: str
) -> None:
    caplog.set_level(logging.INFO)
    messages = _ddp_answer(url, _saves(params))
    results = [m for m in messages if m.get("msg") == "result"]
    assert len(results) == 1, messages
    assert results[0]["id"] == "c1"
    error = results[0]["error"]
    assert error["error"] == 400
    assert problem in error["reason"], error
    assert messages[-1] == {"msg": "updated", "methods": ["c1"]}
    assert jc.find({}) == []
    _no_crash_logged(caplog)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("[" + _doc_with(data={"blob": BAD_BINARY}) + "]", "$binary"),
        ("[" + _doc_with(type=HIGH) + "]", "surrogate"),
        ("[" + _doc_with(data={"k": f"x{LOW}"}) + "]", "surrogate"),
    ],
)
def test_an_http_call_with_a_bad_value_is_answered_400(
    url: str, jc: JobCollection, caplog: pytest.LogCaptureFixture, body: str, problem: str
) -> None:
    caplog.set_level(logging.INFO)
    status, reply = _post(url, "jobSave", body)
    assert status == 400, reply
    assert problem in reply["error"]["reason"], reply
    assert jc.find({}) == []
    _no_crash_logged(caplog)


def test_a_bad_value_in_a_subscription_is_a_nosub_400(url: str) -> None:
    with DdpClient(url) as client:
        client.send('{"msg":"sub","id":"s1","name":"queue.jobs","params":[{"_id":"\\udfff"}]}')
        nosub = client.recv_until(lambda m: m.get("msg") == "nosub")[-1]
        assert nosub["id"] == "s1"
        assert nosub["error"]["error"] == 400
        assert "surrogate" in nosub["error"]["reason"]


def test_surrogate_pairs_and_escaped_backslashes_are_fine(url: str, jc: JobCollection) -> None:
    # a valid pair (an emoji as a Python client escapes it) and a literal backslash-u text
    doc = _doc_with(data={"emoji": "\U0001f600", "text": "\\ud800 is not an escape here"})
    messages = _ddp_answer(url, _saves(doc))
    result = next(m for m in messages if m.get("msg") == "result")
    assert "error" not in result, result
    (job,) = jc.find({})
    assert job.data == {"emoji": "\U0001f600", "text": "\\ud800 is not an escape here"}

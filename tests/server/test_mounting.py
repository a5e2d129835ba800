"""The Server is an ASGI app: it mounts into Starlette, and publishes user-defined queries."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import uvicorn
from ddp_harness import DdpClient, serving
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from jobcollection import Job, JobCollection
from jobcollection.server import Server


class _AnyApp:
    """Gives any ASGI app the `serve`/`stop` pair the harness drives."""

    def __init__(self, app: Any) -> None:
        self.app, self.server = app, None

    async def serve(self, host: str, port: int, *, ready: Any) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host=host, port=port, log_level="warning")
        )
        task = asyncio.create_task(self.server.serve())
        while not self.server.started:  # noqa: ASYNC110 (uvicorn has no event)
            await asyncio.sleep(0.01)
        bound = self.server.servers[0].sockets[0].getsockname()
        ready(f"http://{bound[0]}:{bound[1]}")
        await task

    def stop(self) -> None:
        assert self.server is not None
        self.server.should_exit = True


def _post(url: str, body: object) -> Any:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def test_mounted_under_starlette_serves_ddp_and_http(db: str) -> None:
    with JobCollection("queue", db=db) as jc:
        jc.allow(admin="anyone")
        job = Job(jc, "t", {"n": 1})
        job.save()
        app = Starlette(
            routes=[
                Route("/", lambda request: PlainTextResponse("home")),
                Mount("/jobs", app=Server(jc)),
            ]
        )
        with serving(_AnyApp(app)) as url:  # type: ignore[arg-type]
            with urllib.request.urlopen(url + "/") as home:
                assert home.read() == b"home"
            assert _post(f"{url}/jobs/api/queue/getJob", [job.id])["result"]["_id"] == job.id
            with DdpClient(url + "/jobs") as client:
                assert client.call("queue_getJob", job.id)["data"] == {"n": 1}


def test_user_defined_publication_follows_its_selector(db: str) -> None:
    with JobCollection("queue", db=db) as jc:
        server = Server(jc)
        seen: list[tuple[object, ...]] = []

        def failures_of(user_id: str | None, job_type: str) -> dict[str, object]:
            seen.append((user_id, job_type))
            return {"type": job_type, "status": {"$in": ["failed", "cancelled"]}}

        server.publish("myFailures", failures_of)
        keep, other = Job(jc, "mail", {}), Job(jc, "sms", {})
        keep.save()
        other.save()
        with serving(server) as url, DdpClient(url) as client:
            client.send({"msg": "sub", "id": "s1", "name": "myFailures", "params": ["mail"]})
            first = client.recv_until(lambda m: m.get("msg") == "ready")
            assert [m["msg"] for m in first] == ["ready"]  # nothing failed yet
            keep.cancel()
            other.cancel()
            added = client.recv_until(lambda m: m.get("msg") == "added")[-1]
            assert (added["collection"], added["id"]) == ("queue.jobs", keep.id)
            assert added["fields"]["status"] == "cancelled"
            assert "_private" not in added["fields"]
        assert seen == [(None, "mail")]

"""The worker loop's calls on `JobManager`: complete a batch of runs and claim the next, for one
caller or for several at once (a queue's threads that finish together, a connection's queued
`jobDoneAndGetWork`s), served together by one transaction (see `_combiner`, and
`_batches.complete_then_claim_all` for the one-statement step where the storage has one)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..core.params import GetWorkParams, parse_params
from ..core.storable import naming_unstorable
from ..storage.port import JobDoc
from ._batches import (
    Completion,
    Outcome,
    PartlyDone,
    complete_then_claim_all,
    plain_runs,
    unstorable_result,
)
from ._combiner import Combiner, Request
from ._context import Op
from .events import CallEvent
from .workers import WorkerRef

Runs = Sequence[tuple[str, str, object]]
Answer = tuple[list[bool | str], list[JobDoc]]


class WorkerLoop:
    """`complete_many`, `complete_and_claim` and `complete_and_claim_many` (a mixin of
    `JobManager`, which provides what is declared below)."""

    stopped: bool
    _combiner: Combiner[Completion, Outcome]
    run: Callable[..., Any]
    _scrubbed: Callable[[Any], Any]
    _announce: Callable[[str, CallEvent], None]

    if TYPE_CHECKING:

        @property
        def _observed(self) -> bool:
            """Whether anyone listens to the calls (`JobManager._observed`)."""
            return False

    def complete_many(self, runs: Runs) -> list[bool | str]:
        """`jobDone` for several runs in one transaction (a worker's payload batch)."""
        return self.complete_and_claim(runs, None)[0]

    def complete_and_claim(
        self, runs: Runs, get_work: list[object] | None, worker: WorkerRef | None = None
    ) -> Answer:
        """`jobDone` for several runs, then (optionally) `getWork` params, in ONE transaction.

        A busy worker thread finishing a batch and wanting the next one pays for one commit
        instead of two. Consecutive runs sharing a runId and a result (a batch from one
        `getWork`) are completed by one statement. Events are announced as for separate calls.
        """
        work = self._completion(runs, get_work, worker)
        return self._answer(runs, get_work, self._combiner.submit(work))

    def complete_and_claim_many(
        self, calls: Sequence[tuple[Runs, list[object] | None]], worker: WorkerRef | None = None
    ) -> list[Answer | Exception]:
        """`complete_and_claim` for several callers in order (a connection's queued calls),
        served together; each gets its answer or its own error (bad input fails only it)."""
        answers: list[Answer | Exception] = []
        works: list[tuple[int, Completion]] = []
        for runs, get_work in calls:
            try:
                works.append((len(answers), self._completion(runs, get_work, worker)))
                answers.append(([], []))  # (replaced below)
            except Exception as error:
                answers.append(error)
        served = self._combiner.submit_many([work for _, work in works])
        for (index, _), request in zip(works, served, strict=True):
            runs, get_work = calls[index]
            if request.error is not None:
                answers[index] = _error(request.error)
            else:
                assert request.result is not None
                answers[index] = self._answer(runs, get_work, request.result)
        return answers

    def _completion(
        self, runs: Runs, get_work: list[object] | None, worker: WorkerRef | None
    ) -> Completion:
        """The checked work of one caller (raises, naming the bad field)."""
        if not plain_runs(runs):  # the usual batch passes this cheap check as a whole
            for job_id, run_id, result in runs:
                parse_params("jobDone", [job_id, run_id, result, {}])
        claim = None if get_work is None else parse_params("getWork", get_work)
        assert claim is None or isinstance(claim, GetWorkParams)
        return runs, claim, worker

    def _answer(self, runs: Runs, get_work: list[object] | None, outcome: Outcome) -> Answer:
        outcomes, claimed = outcome
        results: list[bool | str] = [bool(outcomes.get(job_id, False)) for job_id, _, _ in runs]
        if get_work is not None:
            claimed = self._scrubbed(claimed)
        if self._observed:
            for (job_id, run_id, result), done in zip(runs, results, strict=True):
                params = [job_id, run_id, result, {}]
                self._announce("call", CallEvent("jobDone", params, None, None, None, done))
            if get_work is not None:
                self._announce("call", CallEvent("getWork", get_work, None, None, None, claimed))
        return results, claimed

    def _complete_and_claim_all(self, requests: list[Request[Completion, Outcome]]) -> None:
        """Serve several callers' completions and claims in one transaction. Should that fail
        (one caller's result cannot be stored), each is served alone: one caller's bad
        request must not fail the others'."""

        def serve(op: Op, batch: list[Request[Completion, Outcome]]) -> list[Outcome]:
            return complete_then_claim_all(op, [request.work for request in batch], self.stopped)

        def serve_named(batch: list[Request[Completion, Outcome]]) -> list[Outcome]:
            with naming_unstorable(lambda: unstorable_result(batch)):
                outcomes: list[Outcome] = self.run(serve, batch)
            return outcomes

        try:
            outcomes = serve_named(requests)
        except PartlyDone as partly:
            raise partly.error from None  # (some runs completed: not served again)
        except Exception:
            if len(requests) == 1:
                raise
            for request in requests:
                try:
                    request.result = serve_named([request])[0]
                except Exception as error:
                    request.error = error
            return
        for request, outcome in zip(requests, outcomes, strict=True):
            request.result = outcome


def _error(error: BaseException) -> Exception:
    if isinstance(error, Exception):
        return error
    raise error  # (KeyboardInterrupt and the like are not a caller's answer)

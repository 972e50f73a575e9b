"""Shadow traffic: copies of answered requests sent to a candidate version in the background.

The user's answer is already computed when its copy is queued, so a shadow call never
delays or changes it. At most ``max_in_flight`` copies run at once per process; a copy
that finds them all busy is dropped and counted, so shadowing backs off under load
instead of adding to it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from serving.gateway.errors import CANDIDATE_PENDING, GatewayError
from serving.gateway.labels import label_of
from serving.gateway.observability import metrics

log = logging.getLogger(__name__)

# (texts) -> (probabilities, the version that answered), by the candidate
CandidateCall = Callable[[Sequence[str]], tuple[Sequence[float], int]]
# (succeeded, seconds) and (agreed) reports on the candidate's health
CallReport = Callable[[bool, float], None]
ComparisonReport = Callable[[bool], None]


class Shadow:
    def __init__(self, max_in_flight: int) -> None:
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="shadow")

    def submit(
        self, model: str, stable_version: int, texts: Sequence[str], stable: Sequence[float],
        call: CandidateCall, report_call: CallReport, report_comparison: ComparisonReport,
    ) -> bool:
        """Queue a copy; False when it was dropped because every slot is busy."""
        if not self._slots.acquire(blocking=False):
            metrics.SHADOW_REQUESTS.labels(model, "dropped").inc()
            return False
        try:
            self._pool.submit(self._compare, model, stable_version, texts, stable, call, report_call, report_comparison)
        except RuntimeError:  # the pool is shut down: the process is stopping
            self._slots.release()
            return False
        return True

    def _compare(
        self, model: str, stable_version: int, texts: Sequence[str], stable: Sequence[float],
        call: CandidateCall, report_call: CallReport, report_comparison: ComparisonReport,
    ) -> None:
        started = time.perf_counter()
        try:
            candidate, candidate_version = call(texts)
        except CANDIDATE_PENDING as error:  # not the candidate's failure: nothing to judge yet
            metrics.SHADOW_REQUESTS.labels(model, "pending").inc()
            log.info("shadow call to %s skipped: %s", model, error.message)
            return
        except GatewayError as error:
            report_call(False, time.perf_counter() - started)
            metrics.SHADOW_REQUESTS.labels(model, "failed").inc()
            log.info("shadow call to %s failed: %s", model, error.message)
            return
        except Exception:  # never let a copy's bug reach anything but the log
            metrics.SHADOW_REQUESTS.labels(model, "failed").inc()
            log.exception("shadow call to %s failed", model)
            return
        finally:
            self._slots.release()
        report_call(True, time.perf_counter() - started)
        metrics.SHADOW_REQUESTS.labels(model, "compared").inc()
        versions = (model, str(stable_version), str(candidate_version))
        for ours, theirs in zip(stable, candidate):
            agreed = label_of(ours) == label_of(theirs)
            metrics.SHADOW_COMPARISONS.labels(*versions, "agree" if agreed else "disagree").inc()
            metrics.SHADOW_DIFFERENCE.labels(*versions).observe(abs(float(theirs) - float(ours)))
            report_comparison(agreed)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

"""Which version answers an unpinned request while a new version is rolled out.

A rollout names, per public model, a ``stable`` version and optionally a ``candidate``
with a share of the unpinned requests (``canary_percent``) and a share of them copied
to it in the background (``shadow_percent``). Versions are numbers, or TF Serving
version labels of ``models.config`` (``stable``, ``canary``) that the model server
resolves. Clients that pin a version are never moved. The split is per request and
sticky per request id: the same id always lands on the same arm.

The candidate's calls are watched over a sliding window; when its error rate, p99
latency or (in shadow) disagreement rate crosses the rule's bound with enough calls
in the window, this process stops sending it traffic until the rollout changes.
Promotion is an operator's edit of the rollout file, which is re-read when it changes.

Document (YAML, from ``GATEWAY_ROLLOUTS_FILE`` or inline in ``GATEWAY_ROLLOUTS``)::

    lstm:
      stable: 1
      candidate: 2
      canary_percent: 20
      shadow_percent: 0
      rollback: {window_seconds: 60, min_requests: 20, max_error_rate: 0.05,
                 max_p99_seconds: 1.0, max_disagreement_rate: 0.2}
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated

import pydantic.dataclasses
import yaml
from pydantic import BeforeValidator, TypeAdapter, ValidationError, ValidationInfo, model_validator
from pydantic_core import ErrorDetails

from serving.gateway.observability import metrics
from serving.gateway.watched_file import CHECK_SECONDS, WatchedFile

log = logging.getLogger(__name__)

STABLE, CANARY, PINNED = "stable", "canary", "pinned"

VersionRef = int | str  # a version number or a version label


class RolloutError(ValueError):
    """The rollout document cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Route:
    """Where one request goes: ``version`` (None: the newest available) on ``arm``, and
    the version its copy goes to when it is shadowed."""

    arm: str
    version: VersionRef | None
    shadow: VersionRef | None = None


# -- the document ---------------------------------------------------------------------------
# Each validator's message reads after the place it is about: "lstm.stable must be ...".


def _version(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"must be a version number or a version label, got {value!r}")
    if isinstance(value, int) and value < 1:
        raise ValueError(f"must be a positive version number, got {value}")
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    return value


def _number(low: float, high: float | None = None) -> BeforeValidator:
    bound = f"from {low} to {high}" if high is not None else f"at least {low}"

    def validate(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"must be a number, got {value!r}")
        if value < low or (high is not None and value > high):
            raise ValueError(f"must be {bound}")
        return float(value)

    return BeforeValidator(validate)


def _at_least_one(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a whole number of at least 1, got {value!r}")
    return value


def _mapping_of(cls: type, not_a_mapping: str, none_is_default: bool = False) -> BeforeValidator:
    """A mapping of ``cls``'s fields (or a ``cls`` already made)."""
    known = sorted(f.name for f in fields(cls))

    def validate(value: object) -> object:
        if value is None and none_is_default:
            return {}
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(not_a_mapping)
        unknown = sorted(map(str, set(value) - set(known)))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(known)})")
        return value

    return BeforeValidator(validate)


Version = Annotated[VersionRef, BeforeValidator(_version)]
Percent = Annotated[float, _number(0, 100)]
Rate = Annotated[float, _number(0, 1)]
Bound = Annotated[float, _number(0.001)]


@pydantic.dataclasses.dataclass(frozen=True)
class RollbackRule:
    window_seconds: Bound = 60.0
    # Calls (or shadow comparisons) in the window before judging.
    min_requests: Annotated[int, BeforeValidator(_at_least_one)] = 20
    max_error_rate: Rate = 0.05
    max_p99_seconds: Bound = 1.0
    max_disagreement_rate: Rate | None = None  # shadow only; None: not judged


# `rollback:` with nothing after it is the default rule.
Rule = Annotated[RollbackRule, _mapping_of(RollbackRule, "must be a mapping", none_is_default=True)]


@pydantic.dataclasses.dataclass(frozen=True)
class Rollout:
    stable: Version
    candidate: Version | None = None
    canary_percent: Percent = 0.0
    shadow_percent: Percent = 0.0
    rollback: Rule = field(default_factory=RollbackRule)

    @model_validator(mode="after")
    def _arms(self) -> Rollout:
        if self.candidate is not None and self.candidate == self.stable:
            raise ValueError(f"candidate and stable are the same version ({self.stable!r})")
        if (self.canary_percent or self.shadow_percent) and self.candidate is None:
            raise ValueError("canary_percent and shadow_percent need a 'candidate'")
        return self


def _served(document: object, info: ValidationInfo) -> object:
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise ValueError("must map model names to rollouts")
    models = info.context["models"]
    for model in document:
        if model not in models:
            raise ValueError(f"{model}: not a served model (served: {', '.join(sorted(models))})")
    return document


_DOCUMENT = TypeAdapter(Annotated[
    dict[str, Annotated[Rollout, _mapping_of(Rollout, "must be a mapping with at least 'stable'")]],
    BeforeValidator(_served),
])


def parse_rollouts(document: object, models: Mapping[str, str], source: str) -> dict[str, Rollout]:
    """The rollouts of a decoded document, keyed by public model name."""
    try:
        return _DOCUMENT.validate_python(document, context={"models": models})
    except ValidationError as error:
        raise RolloutError(_explained(error.errors()[0], source)) from None


def _explained(error: ErrorDetails, source: str) -> str:
    """``source: lstm.canary_percent must be ...``: the place in the document, then the problem."""
    place = [str(part) for part in error["loc"]]
    if error["type"] == "missing":
        reason = f"'{place.pop()}' is required"
    else:
        reason = str(error.get("ctx", {}).get("error", error["msg"]))
    if not place:
        return f"{source}: {reason}"
    # A value's own error reads as a sentence about it; a rule of its mapping follows a colon.
    return f"{source}: {'.'.join(place)}{' ' if reason.startswith('must ') else ': '}{reason}"


def load_document(text: str, source: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RolloutError(f"{source}: not valid YAML: {error}") from None


# -- the candidate's health -----------------------------------------------------------------


class CandidateHealth:
    """The candidate's recent calls and shadow comparisons; ``why_unhealthy`` judges them."""

    def __init__(self, rule: RollbackRule, clock: Callable[[], float] = time.monotonic) -> None:
        self.rule = rule
        self._clock = clock
        self._calls: deque[tuple[float, bool, float]] = deque()  # (time, succeeded, seconds)
        self._comparisons: deque[tuple[float, bool]] = deque()  # (time, agreed)

    def record_call(self, succeeded: bool, seconds: float) -> str | None:
        self._calls.append((self._clock(), succeeded, seconds))
        return self.why_unhealthy()

    def record_comparison(self, agreed: bool) -> str | None:
        self._comparisons.append((self._clock(), agreed))
        return self.why_unhealthy()

    def why_unhealthy(self) -> str | None:
        """The reason to roll back ("error_rate", "p99_latency", "disagreement_rate"), if any."""
        rule = self.rule
        oldest = self._clock() - rule.window_seconds
        for window in (self._calls, self._comparisons):
            while window and window[0][0] < oldest:
                window.popleft()
        if len(self._calls) >= rule.min_requests:
            failed = sum(not ok for _, ok, _ in self._calls)
            if failed / len(self._calls) > rule.max_error_rate:
                return "error_rate"
            durations = sorted(seconds for _, ok, seconds in self._calls if ok)
            if durations and durations[min(len(durations) - 1, math.ceil(0.99 * len(durations)) - 1)] > rule.max_p99_seconds:
                return "p99_latency"
        if rule.max_disagreement_rate is not None and len(self._comparisons) >= rule.min_requests:
            disagreed = sum(not agreed for _, agreed in self._comparisons)
            if disagreed / len(self._comparisons) > rule.max_disagreement_rate:
                return "disagreement_rate"
        return None


# -- the router -----------------------------------------------------------------------------


def canary_draw(model: str, request_id: str | None) -> float:
    """A number in [0, 100): a hash of the request id (sticky), else random."""
    if request_id is None:
        return random.random() * 100
    digest = hashlib.blake2b(f"{model}\0{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100


@dataclass
class _ModelState:
    rollout: Rollout
    health: CandidateHealth
    rolled_back: str | None = None  # the reason, once rolled back


class Router:
    """Routes requests by the current rollouts and rolls a failing candidate back."""

    def __init__(
        self, models: Mapping[str, str], file: Path | None = None, inline: str | None = None,
        check_seconds: float = CHECK_SECONDS, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``file`` is looked at for changes every ``check_seconds`` of ``clock``."""
        if file is not None and inline is not None:
            raise RolloutError("set GATEWAY_ROLLOUTS_FILE or GATEWAY_ROLLOUTS, not both")
        self._models = models
        self._file = WatchedFile(file, check_seconds, clock) if file is not None else None
        self._lock = threading.Lock()
        self._states: dict[str, _ModelState] = {}
        if inline is not None:
            self._apply(parse_rollouts(load_document(inline, "GATEWAY_ROLLOUTS"), models, "GATEWAY_ROLLOUTS"))
        elif self._file is not None:
            self._reload(strict=True)

    # -- the rollout document --

    def _reload(self, strict: bool) -> None:
        source = str(self._file.path)
        try:
            try:
                text = self._file.read()
            except FileNotFoundError:
                text = ""  # no file: no rollout
            rollouts = parse_rollouts(load_document(text, source), self._models, source)
        except (OSError, UnicodeDecodeError, RolloutError) as error:
            if strict:
                raise RolloutError(str(error)) from None
            # Keep serving by the last good document; a bad one is read again once the file changes.
            log.error("rollouts not reloaded, the previous ones stay: %s", error)
            metrics.ROLLOUT_RELOADS.labels("error").inc()
            return
        self._apply(rollouts)
        if not strict:
            log.info("rollouts reloaded from %s: %s", source, rollouts or "none")
            metrics.ROLLOUT_RELOADS.labels("ok").inc()

    def _apply(self, rollouts: dict[str, Rollout]) -> None:
        with self._lock:
            states = {}
            for model, rollout in rollouts.items():
                kept = self._states.get(model)
                # A rollback stands until the operator changes the model's rollout.
                states[model] = kept if kept and kept.rollout == rollout else _ModelState(rollout, CandidateHealth(rollout.rollback))
            for model, state in self._states.items():
                if state.rolled_back and states.get(model) is not state:
                    metrics.ROLLED_BACK.labels(model, str(state.rollout.candidate)).set(0)
            self._states = states

    def _refresh(self) -> None:
        if self._file is not None and self._file.changed():
            self._reload(strict=False)

    # -- per request --

    def rollout(self, model: str) -> Rollout | None:
        self._refresh()
        state = self._states.get(model)
        return state.rollout if state else None

    def route(self, model: str, version: int | None, request_id: str | None) -> Route:
        self._refresh()
        if version is not None:
            return Route(PINNED, version)
        state = self._states.get(model)
        if state is None:
            return Route(STABLE, None)
        rollout = state.rollout
        if rollout.candidate is None or state.rolled_back:
            return Route(STABLE, rollout.stable)
        if canary_draw(model, request_id) < rollout.canary_percent:
            return Route(CANARY, rollout.candidate)
        shadowed = rollout.shadow_percent and random.random() * 100 < rollout.shadow_percent
        return Route(STABLE, rollout.stable, rollout.candidate if shadowed else None)

    def record_call(self, model: str, candidate: VersionRef, succeeded: bool, seconds: float) -> None:
        self._judge(model, candidate, lambda health: health.record_call(succeeded, seconds))

    def record_comparison(self, model: str, candidate: VersionRef, agreed: bool) -> None:
        self._judge(model, candidate, lambda health: health.record_comparison(agreed))

    def _judge(self, model: str, candidate: VersionRef, record: Callable[[CandidateHealth], str | None]) -> None:
        with self._lock:
            state = self._states.get(model)
            if state is None or state.rollout.candidate != candidate or state.rolled_back:
                return  # the rollout changed while the call ran
            reason = record(state.health)
            if reason is None:
                return
            state.rolled_back = reason
        rule = state.rollout.rollback
        log.warning("%s candidate %s rolled back: %s over the last %s s crossed its bound "
                    "(error rate %s, p99 %s s, disagreement rate %s); edit the rollout to try again",
                    model, candidate, reason, rule.window_seconds, rule.max_error_rate,
                    rule.max_p99_seconds, rule.max_disagreement_rate)
        metrics.ROLLBACKS.labels(model, str(candidate), reason).inc()
        metrics.ROLLED_BACK.labels(model, str(candidate)).set(1)

    def rolled_back(self, model: str) -> str | None:
        self._refresh()
        state = self._states.get(model)
        return state.rolled_back if state else None

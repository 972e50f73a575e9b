"""The data plane: the one request path of every transport (HTTP, gRPC, and the Open
Inference Protocol over both).

A transport decodes its request into a ``PredictRequest`` and encodes what comes back;
everything between (validation, the version that answers, canary and shadow, the model
call, explanations, per-prediction metrics, the prediction log) happens here once. Besides
``predict``, the data plane answers the questions every protocol asks: is the gateway
live and ready, which models and versions it serves, whether one is ready.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serving.gateway.access.guard import Guard
from serving.gateway.access.rate_limits import RateLimiter
from serving.gateway.errors import (
    CANDIDATE_PENDING,
    GatewayError,
    InvalidInput,
    ModelNotFound,
    ModelServerFailure,
    ModelServerTimeout,
    ModelServerUnavailable,
    NoKnownWords,
    Overloaded,
    PayloadTooLarge,
)
from serving.gateway.explanations import Explanation, explain
from serving.gateway.labels import label_of
from serving.gateway.observability import metrics
from serving.gateway.operator_files import read_files
from serving.gateway.routing.coalescing import Coalescer
from serving.gateway.routing.model_client import ModelServerClient
from serving.gateway.routing.rollouts import CANARY, STABLE, Route, VersionRef
from serving.gateway.routing.shadow import Shadow
from serving.gateway.routing.tokenizers import Tokenizers
from serving.gateway.routing.versions import AVAILABLE, LOADING_STATES, VersionCache
from serving.gateway.settings import Settings
from serving.predictions_log.writer import PredictionLog
from text_contract.tokenizer import EncodedText

log = logging.getLogger(__name__)

DEFAULT_TOP_K = 10  # words per explanation unless the request asks otherwise
MAX_TOP_K = 500  # the model's window: no text has more words to show
# A call needs at least this much of the client's deadline left to be worth starting.
MIN_USEFUL_SECONDS = 0.005
# A candidate failing with these is the candidate's fault (it was unloaded, or is down, slow or
# broken): the stable version answers instead, and the failure counts towards its rollback.
CANDIDATE_FAILURES = (ModelNotFound, ModelServerUnavailable, ModelServerTimeout, ModelServerFailure)


@dataclass(frozen=True)
class PredictRequest:
    """One prediction request, as any transport brings it."""

    texts: list
    model: str | None = None  # public name; the default model when None
    version: int | None = None  # pinned by the client; routed when None
    explain: bool = False
    top_k: int | None = None  # words per explanation
    request_id: str | None = None  # keeps the client on one arm of a canary rollout
    timeout: float | None = None  # seconds left of the client's own deadline, when it set one
    transport: str = "http"
    key_id: str | None = None  # the caller's API key id: explanations are charged to it


@dataclass(frozen=True)
class Prediction:
    positive_probability: float
    label: str
    model_name: str
    model_version: int
    num_tokens: int
    truncated: bool
    num_out_of_vocabulary: int
    # Every word is unknown to the model (or there is none): the probability then says
    # nothing about the text, only what the model makes of an empty input.
    no_known_words: bool
    # "stable", "canary" (a rollout's candidate answered) or "pinned" (the client chose the version)
    arm: str
    explanation: Explanation | None = None  # when the request asked for one

    @classmethod
    def of(cls, probability: float, encoded: EncodedText, *, model_name: str, version: int, arm: str,
           explanation: Explanation | None = None) -> Prediction:
        """The prediction for one encoded text: every transport and the batch job build it here."""
        return cls(
            positive_probability=probability,
            label=label_of(probability),
            model_name=model_name,
            model_version=version,
            num_tokens=encoded.num_tokens,
            truncated=encoded.truncated,
            num_out_of_vocabulary=encoded.num_oov,
            no_known_words=encoded.num_oov == encoded.num_tokens,
            arm=arm,
            explanation=explanation,
        )

    def to_json(self) -> dict:
        fields = dict(vars(self))  # a copy; dataclasses.asdict deep-copies, at 5x the cost
        explanation = fields.pop("explanation")
        if explanation is not None:
            fields["explanation"] = [word.to_json() for word in explanation.words]
            if explanation.note:
                fields["explanation_note"] = explanation.note
        return fields


@dataclass
class _Charge:
    paid: bool = False


@dataclass(frozen=True)
class ModelInfo:
    model: str  # the public name
    model_name: str  # the model server's
    versions: dict[int, str]  # version -> state, in version order

    @property
    def available(self) -> list[int]:
        return [version for version, state in self.versions.items() if state == AVAILABLE]


class DataPlane:
    def __init__(self, settings: Settings, client: ModelServerClient | None = None) -> None:
        self.settings = settings
        self.client = client or ModelServerClient(
            settings.model_server, settings.rpc_timeout_seconds,
            lb_policy=settings.model_server_lb_policy, max_attempts=settings.model_server_max_attempts,
        )
        self._tokenizers = Tokenizers(settings.models_dir)
        self.versions = VersionCache(self.client, settings.status_cache_seconds)
        self.rollouts, api_keys = read_files(settings)
        self._guard = Guard(api_keys, RateLimiter(settings.rate_limit_per_key, settings.rate_limit_burst)
                            if settings.rate_limit_per_key else None)
        self._shadow = Shadow(settings.shadow_max_in_flight)
        self.prediction_log = PredictionLog(
            settings.prediction_log_dir, settings.prediction_log_sample_rate,
            settings.prediction_log_texts == "text", settings.prediction_log_salt,
            settings.prediction_log_max_bytes, settings.prediction_log_max_files,
        ) if settings.prediction_log_dir else None
        self._slots = threading.BoundedSemaphore(settings.max_in_flight)
        self._calls = Coalescer(self.client.predict, settings.coalesce_max_calls, settings.coalesce_max_rows)
        self._readiness_report: dict[str, str] = {}  # the last one logged

    @property
    def max_texts(self) -> int:
        """Texts per request, for transports that must stop parsing at the limit."""
        return self.settings.max_texts

    # -- validation, identical for every transport --------------------------------------------

    def authenticate(self, key: str | None, transport: str) -> str | None:
        """The caller's key id, once its key is valid and within its rate; None when the
        gateway asks for no key. Transports ask before they read a request."""
        return self._guard.authenticate(key, transport)

    def _check_texts(self, texts: list) -> None:
        limit = self.settings.max_texts
        if not texts:
            raise InvalidInput("'texts' must contain at least one text")
        if len(texts) > limit:
            raise PayloadTooLarge(f"too many texts: {len(texts)} (at most {limit} per request)")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(f"texts[{index}] must be a string, got {type(text).__name__}")
            if not text.strip():
                raise InvalidInput(f"texts[{index}] is empty or whitespace only")
            if len(text) > self.settings.max_text_chars:
                raise PayloadTooLarge(
                    f"texts[{index}] has {len(text)} characters (at most {self.settings.max_text_chars})"
                )

    def model_label(self, model: str | None) -> str:
        """The request's model as a metric label: a served model's public name or "unknown",
        so that clients cannot create series with names of their own."""
        public = model or self.settings.default_model
        return public if public in self.settings.models else "unknown"

    def require_model(self, model: str | None) -> tuple[str, str]:
        """(public name, the model server's name) of ``model`` (the default model when None);
        ModelNotFound for a name the gateway does not serve. Asks no one."""
        public = model or self.settings.default_model
        if public not in self.settings.models:
            raise ModelNotFound(f"unknown model {public!r}; choose one of {sorted(self.settings.models)}")
        return public, self.settings.models[public]

    # -- operations -------------------------------------------------------------------------

    def _check_explain(self, texts: list, top_k: int | None) -> int:
        """The number of words to show per explained text."""
        if len(texts) > self.settings.max_explained_texts:
            raise PayloadTooLarge(f"explain: too many texts: {len(texts)} "
                                  f"(at most {self.settings.max_explained_texts} per explained request)")
        if top_k is None:
            return DEFAULT_TOP_K
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise InvalidInput(f"'explain_top_k' must be a whole number from 1 to {MAX_TOP_K}, got {top_k!r}")
        return top_k

    def predict(self, request: PredictRequest) -> list[Prediction]:
        """One prediction per text; with ``explain``, each carries the ``top_k`` words that moved it most."""
        texts, version = request.texts, request.version
        self._check_texts(texts)
        public, model_name = self.require_model(request.model)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise InvalidInput(f"'version' must be a positive integer, got {version!r}")
        if request.timeout is not None and request.timeout < MIN_USEFUL_SECONDS:
            raise ModelServerTimeout("the client's deadline left no time for the model call")
        words_shown = self._check_explain(texts, request.top_k) if request.explain else 0
        metrics.TEXTS_PER_REQUEST.labels(request.transport).observe(len(texts))
        # Refuse at once rather than queue: a slow model server must not pile up
        # threads and memory in the gateway.
        if not self._slots.acquire(blocking=False):
            raise Overloaded(
                f"more than {self.settings.max_in_flight} predictions in progress, retry shortly", retry_after=1
            )
        try:
            route = self.rollouts.route(public, version, request.request_id)
            predictions = self._routed(request, public, model_name, route, words_shown)
        except GatewayError as error:
            if error.upstream_code:
                metrics.MODEL_SERVER_ERRORS.labels(error.upstream_code).inc()
            raise
        finally:
            self._slots.release()
        if self.prediction_log is not None:
            self._log_sample(texts, public, predictions, request.transport, request.request_id)
        return predictions

    def _routed(
        self, request: PredictRequest, public: str, model_name: str, route: Route, words_shown: int,
    ) -> list[Prediction]:
        """The predictions of ``route``'s version; a failing canary is answered by the stable
        version instead, and a shadowed request is copied to the candidate afterwards."""
        charge = _Charge()  # an explanation's cost is paid once, by whichever version answers
        if route.arm == CANARY:
            # A client picks its arm (by its request id) and shapes its call: an explanation's many
            # model calls, or a deadline shorter than the gateway's, say nothing of the candidate.
            judged = not words_shown
            started = time.perf_counter()
            try:
                predictions = self._predict(request, public, model_name, route, words_shown, charge)
            except (*CANDIDATE_PENDING, *CANDIDATE_FAILURES) as error:
                clients_deadline = isinstance(error, ModelServerTimeout) and request.timeout is not None \
                    and request.timeout < self.settings.rpc_timeout_seconds
                if judged and not clients_deadline and not isinstance(error, CANDIDATE_PENDING):
                    self.rollouts.record_call(public, route.version, False, time.perf_counter() - started)
                    log.warning("%s candidate %s failed, the stable version answers: %s",
                                public, route.version, error.message)
                metrics.CANARY_FALLBACKS.labels(public, str(route.version)).inc()
                rollout = self.rollouts.rollout(public)
                # The rollout was removed meanwhile: the newest version answers.
                stable = Route(STABLE, rollout.stable if rollout is not None else None)
                return self._predict(request, public, model_name, stable, words_shown, charge)
            if judged:
                self.rollouts.record_call(public, route.version, True, time.perf_counter() - started)
            return predictions
        predictions = self._predict(request, public, model_name, route, words_shown, charge)
        if route.shadow is not None and not words_shown:
            self._copy_to_candidate(request.texts, public, model_name, route.shadow, predictions, request.request_id)
        return predictions

    def _copy_to_candidate(
        self, texts: list[str], public: str, model_name: str, candidate: VersionRef, answered: list[Prediction],
        request_id: str | None,
    ) -> None:
        request_ids = (request_id,) if request_id else ()

        def call(shadowed: Sequence[str]) -> tuple[Sequence[float], int]:
            version = self.versions.pick(model_name, candidate)
            ids, _ = self._tokenizers.tokenizer(model_name, version).encode_batch(list(shadowed))
            probabilities, served = self._calls.predict(model_name, version, ids, self.settings.rpc_timeout_seconds,
                                                        request_ids)
            return probabilities.tolist(), served

        self._shadow.submit(
            public, answered[0].model_version, texts, [p.positive_probability for p in answered], call,
            lambda succeeded, seconds: self.rollouts.record_call(public, candidate, succeeded, seconds),
            lambda agreed: self.rollouts.record_comparison(public, candidate, agreed),
        )

    def _predict(
        self, request: PredictRequest, public: str, model_name: str, route: Route, words_shown: int,
        charge: _Charge, retried: bool = False,
    ) -> list[Prediction]:
        texts = request.texts
        started = time.perf_counter()
        request_ids = (request.request_id,) if request.request_id else ()
        version = self.versions.pick(model_name, route.version)
        tokenizer = self._tokenizers.tokenizer(model_name, version)
        ids, encoded = tokenizer.encode_batch(texts)
        if self.settings.refuse_no_known_words:
            for index, item in enumerate(encoded):
                if item.num_oov == item.num_tokens:
                    raise NoKnownWords(f"texts[{index}] has no word in the model's vocabulary")
        if words_shown and not charge.paid:
            # An explanation asks the model for a row per text, then a row per known word and one
            # for the text: its cost to the key's rate is in requests of max_texts rows, of which
            # the request paid one. Never more than a full bucket holds, or it could never pass.
            rows = len(texts) + sum(item.num_tokens - item.num_oov + 1 for item in encoded)
            cost = math.ceil(rows / self.settings.max_texts)
            if self._guard.burst is not None:
                cost = min(cost, self._guard.burst)
            self._guard.charge(request.key_id, cost - 1, request.transport,
                               f" (this explanation asks the model for {rows} rows: {cost} requests' worth)")
            charge.paid = True
        deadline = self.settings.rpc_timeout_seconds
        if request.timeout is not None:
            deadline = min(deadline, request.timeout)
        call_duration = metrics.MODEL_CALL_DURATION.labels(public, str(version))

        def predict_rows(rows: np.ndarray) -> tuple[np.ndarray, int]:
            with call_duration.time():
                return self._calls.predict(model_name, version, rows, deadline, request_ids)

        try:
            probabilities, served_version = predict_rows(ids)
            explanations = [
                explain(text, row, tokenizer, lambda rows: predict_rows(rows)[0],
                        self.settings.coalesce_max_rows, words_shown)
                for text, row in zip(texts, ids)
            ] if words_shown else [None] * len(texts)
        except ModelNotFound:
            if retried:
                raise
            # The cached version was just unloaded by a rollout: look again, once.
            self.versions.forget(model_name)
            return self._predict(request, public, model_name, route, words_shown, charge, retried=True)

        served = str(served_version)
        metrics.PREDICTION_DURATION.labels(public, served, route.arm).observe(time.perf_counter() - started)
        scores = metrics.POSITIVE_PROBABILITY.labels(public, served, route.arm)
        tokens, oov = metrics.TOKENS_PER_TEXT.labels(public, served), metrics.OOV_RATIO.labels(public, served)
        predictions = []
        for probability, item, explanation in zip(probabilities.tolist(), encoded, explanations):
            prediction = Prediction.of(probability, item, model_name=model_name, version=served_version,
                                       arm=route.arm, explanation=explanation)
            predictions.append(prediction)
            metrics.PREDICTIONS.labels(public, served, route.arm, prediction.label).inc()
            scores.observe(probability)
            tokens.observe(item.num_tokens)
            oov.observe(item.num_oov / item.num_tokens if item.num_tokens else 0.0)
            if item.truncated:
                metrics.TRUNCATED_TEXTS.labels(public).inc()
        return predictions

    def _log_sample(
        self, texts: list[str], public: str, predictions: list[Prediction], transport: str, request_id: str | None,
    ) -> None:
        for text, prediction in zip(texts, predictions):
            if self.prediction_log.sampled():
                self.prediction_log.record({
                    "request_id": request_id, "transport": transport, "model": public,
                    "model_name": prediction.model_name, "version": prediction.model_version, "arm": prediction.arm,
                    "positive_probability": prediction.positive_probability, "label": prediction.label,
                    "num_tokens": prediction.num_tokens, "num_out_of_vocabulary": prediction.num_out_of_vocabulary,
                    "truncated": prediction.truncated,
                }, text)

    # -- what every protocol asks besides predictions ---------------------------------------

    def live(self) -> bool:
        """The process answers; nothing it depends on is asked."""
        return True

    def models(self) -> list[ModelInfo]:
        """Every served model with its versions' states."""
        return [self.model(public) for public in self.settings.models]

    def model(self, model: str) -> ModelInfo:
        """One served model by its public name; ModelNotFound for any other name."""
        public, name = self.require_model(model)
        return ModelInfo(public, name, dict(sorted(self.versions.states(name).items())))

    def model_ready(self, model: str, version: int | None = None) -> bool:
        """``version`` of ``model`` is AVAILABLE (any version, when None); ModelNotFound when
        the model server has no such version at all."""
        info = self.model(model)
        if version is None:
            return bool(info.available)
        if version not in info.versions:
            raise ModelNotFound(f"model {info.model!r} has no version {version}")
        return info.versions[version] == AVAILABLE

    def ready(self) -> bool:
        """Ready when the model server answers, every model has an AVAILABLE version, and no
        rollout's stable version is still loading (unpinned requests would answer 503). Why
        not goes to the log when it changes, not to whoever asks."""
        report = self._readiness()
        if report != self._readiness_report:
            self._readiness_report = report
            log.info("readiness: %s", ", ".join(f"{model}: {state}" for model, state in report.items()))
        return all(state == AVAILABLE for state in report.values())

    def _readiness(self) -> dict[str, str]:
        report: dict[str, str] = {}
        for public, name in self.settings.models.items():
            try:
                states = self.versions.states(name, timeout=min(1.0, self.settings.rpc_timeout_seconds))
            except GatewayError as error:
                report[public] = error.message
                continue
            rollout = self.rollouts.rollout(public)
            if AVAILABLE not in states.values():
                report[public] = "no available version"
            elif rollout is not None and states.get(rollout.stable) in LOADING_STATES:
                report[public] = f"stable version {rollout.stable} is loading"
            else:
                report[public] = AVAILABLE
        return report

    def close(self) -> None:
        """Stop the shadow copies and close the model server's channel (the process is stopping)."""
        self._shadow.close()
        self.client.close()

"""Which model versions are loaded, following TF Serving's config and file-system polling.

Every ``poll_seconds`` the manager lists each model's ``base_path``, applies the
model's ``model_version_policy`` (latest N by default, all, or specific
versions), loads versions that became wanted and unloads those that no longer
are. A new version is loaded before the old one is dropped, and requests already
holding the old version finish on it, so a rollout never fails a request. A
version first runs its warmup requests (TF Serving's
``assets.extra/tf_serving_warmup_requests``), then turns AVAILABLE. A version
that fails to load or to warm up is reported with state END and its error and is
not retried until its folder changes; the versions already loaded keep serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from serving.model_server.batching import BatchScheduler
from serving.model_server.config import BatchingOptions, load_model_config
from serving.model_server.errors import NotFound, Unavailable
from serving.model_server.servable import LoadedVersion, Signature
from serving.model_server.warmup import warm_up
from text_contract.layout import version_dirs

log = logging.getLogger(__name__)

# TF Serving's ModelVersionStatus.State names. START: wanted, waiting for its turn to load.
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclass
class VersionStatus:
    state: str
    error: str = ""  # empty when OK
    folder_mtime: float = 0.0


@dataclass
class ServedVersion:
    loaded: LoadedVersion
    schedulers: dict[str, BatchScheduler] = field(default_factory=dict)

    def run(self, signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        scheduler = self.schedulers.get(signature.name)
        if scheduler is None:
            return self.loaded.run(signature, inputs)
        return scheduler.submit(inputs)

    def close(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.close()


@dataclass
class ModelState:
    base_path: Path
    policy: str  # "latest", "all" or "specific"
    policy_versions: tuple[int, ...]  # N for latest, or the specific versions
    labels: dict[str, int]
    served: dict[int, ServedVersion] = field(default_factory=dict)
    statuses: dict[int, VersionStatus] = field(default_factory=dict)


class ModelManager:
    def __init__(
        self,
        config_path: Path,
        map_base_path: Callable[[str], Path] = Path,
        batching: BatchingOptions | None = None,
        on_batch: Callable[[str, int, int], None] | None = None,
        reload_config: bool = True,
        xla_enabled: bool = False,
    ) -> None:
        self.config_path = config_path
        self._map_base_path = map_base_path
        self._batching = batching
        self._on_batch = on_batch
        self._models: dict[str, ModelState] = {}
        self._lock = threading.Lock()  # guards _models; loading happens outside it
        self._config_mtime = -1.0
        self._reload_config = reload_config
        self._xla_enabled = xla_enabled

    # -- queries used by the request path ---------------------------------------------------

    def resolve(self, name: str, version: int | None = None, label: str = "") -> ServedVersion:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise NotFound(f"Servable not found for request: Latest({name})")
            if label:
                if label not in model.labels:
                    raise NotFound(f"Unrecognized servable version label: {label}")
                version = model.labels[label]
            if version is None:
                if not model.served:
                    raise Unavailable(f"Servable {name} has no available version")
                return model.served[max(model.served)]
            served = model.served.get(version)
            if served is None:
                raise NotFound(f"Servable not found for request: Specific({name}, {version})")
            return served

    def statuses(self, name: str, version: int | None = None) -> dict[int, VersionStatus]:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise NotFound(f"Could not find any versions of model {name}")
            if version is None:
                return dict(model.statuses)
            if version not in model.statuses:
                raise NotFound(f"Could not find version {version} of model {name}")
            return {version: model.statuses[version]}

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    # -- polling ----------------------------------------------------------------------------

    def poll(self, newest_only: bool = False) -> None:
        """Re-read the config if it changed, then sync every model with its folder: first the
        newest wanted version of each model that serves none, so that every model answers as
        soon as it can; then, unless ``newest_only``, every other version the policies want.
        (TF Serving, too, waits at start-up for the latest version of each model only.)"""
        mtime = self.config_path.stat().st_mtime
        if self._config_mtime < 0 or (self._reload_config and mtime != self._config_mtime):
            self._apply_config()
            self._config_mtime = mtime
        names = self.model_names()
        for name in names:
            self._sync_model(name, newest_only=True)
        if not newest_only:
            for name in names:
                self._sync_model(name)

    def run_polling(self, poll_seconds: float, stop: threading.Event) -> None:
        while not stop.wait(poll_seconds):
            try:
                self.poll()
            except Exception:  # a bad poll must not stop future polls
                log.exception("polling the model folders failed")

    def close(self) -> None:
        with self._lock:
            served = [v for model in self._models.values() for v in model.served.values()]
            self._models = {}
        for version in served:
            version.close()

    def _apply_config(self) -> None:
        configs = load_model_config(self.config_path)
        with self._lock:
            previous = self._models
            models: dict[str, ModelState] = {}
            for config in configs:
                policy = config.model_version_policy.WhichOneof("policy_choice") or "latest"
                if policy == "latest":
                    versions = (config.model_version_policy.latest.num_versions or 1,)
                elif policy == "specific":
                    versions = tuple(config.model_version_policy.specific.versions)
                else:
                    versions = ()
                state = ModelState(
                    base_path=self._map_base_path(config.base_path),
                    policy=policy,
                    policy_versions=versions,
                    labels=dict(config.version_labels),
                )
                old = previous.get(config.name)
                if old is not None and old.base_path == state.base_path:
                    state.served, state.statuses = old.served, old.statuses
                models[config.name] = state
            # Models gone from the config, and models now read from another base_path: their
            # versions are replaced, so close them (their batch threads would run on otherwise).
            removed = [v for name, m in previous.items()
                       if name not in models or models[name].served is not m.served for v in m.served.values()]
            self._models = models
        for version in removed:
            version.close()
        log.info("model config %s: %s", self.config_path, ", ".join(sorted(models)))

    def _sync_model(self, name: str, newest_only: bool = False) -> None:
        with self._lock:
            model = self._models[name]
            serves_one = bool(model.served)
        on_disk = {v: (path, path.stat().st_mtime) for v, path in version_dirs(model.base_path).items()}
        wanted = _wanted_versions(model, self._loadable(model, on_disk))
        missing = sorted(wanted - set(model.served), reverse=True)
        with self._lock:
            # Versions wait for their turn as START, as TF Serving reports aspired versions, so
            # that a client can tell "still to load" from "does not exist". A version the policy
            # stopped wanting before its turn came is forgotten.
            for version in missing:
                if version not in model.statuses or model.statuses[version].state in (UNLOADING, END):
                    model.statuses[version] = VersionStatus(START, folder_mtime=on_disk[version][1])
            if not newest_only:
                for version in [v for v, status in model.statuses.items() if status.state == START and v not in wanted]:
                    del model.statuses[version]
        if newest_only:
            if missing and not serves_one:
                self._load(name, model, missing[0], *on_disk[missing[0]])
            return
        for version in missing:
            self._load(name, model, version, *on_disk[version])
        # Decide what to unload only after loading: a version that just failed must not
        # push out the one that serves now.
        wanted = _wanted_versions(model, self._loadable(model, on_disk))
        for version in sorted(set(model.served) - wanted):
            self._unload(name, model, version)

    @staticmethod
    def _loadable(model: ModelState, on_disk: dict[int, tuple[Path, float]]) -> list[int]:
        """Versions on disk, minus those that failed to load and have not changed since."""
        return sorted(
            version for version, (_, mtime) in on_disk.items()
            if not ((status := model.statuses.get(version)) and status.error and status.folder_mtime == mtime)
        )

    def _load(self, name: str, model: ModelState, version: int, path: Path, mtime: float) -> None:
        with self._lock:
            model.statuses[version] = VersionStatus(LOADING, folder_mtime=mtime)
        log.info("loading %s version %d from %s", name, version, path)
        try:
            loaded = LoadedVersion(name, version, path, xla_enabled=self._xla_enabled)
            warmed = warm_up(loaded)
        except Exception as error:
            log.error("%s version %d failed to load: %s", name, version, error)
            with self._lock:
                model.statuses[version] = VersionStatus(END, f"{type(error).__name__}: {error}", mtime)
            return
        served = ServedVersion(loaded)
        if self._batching is not None:
            for signature in loaded.signatures.values():
                served.schedulers[signature.name] = BatchScheduler(
                    lambda inputs, s=signature: loaded.run(s, inputs),
                    self._batching,
                    on_batch=(lambda rows, size: self._on_batch(name, rows, size)) if self._on_batch else None,
                )
        with self._lock:
            model.served[version] = served
            model.statuses[version] = VersionStatus(AVAILABLE, folder_mtime=mtime)
        log.info("%s version %d is available (%d warmup requests run)", name, version, warmed)

    def _unload(self, name: str, model: ModelState, version: int) -> None:
        with self._lock:
            served = model.served.pop(version)
            model.statuses[version] = VersionStatus(UNLOADING)
        served.close()  # lets queued batches finish
        with self._lock:
            model.statuses[version] = VersionStatus(END)
        log.info("%s version %d unloaded", name, version)


def _wanted_versions(model: ModelState, loadable: list[int]) -> set[int]:
    """Versions the policy wants among those on disk that have not failed to load."""
    if model.policy == "all":
        return set(loadable)
    if model.policy == "specific":
        return set(model.policy_versions) & set(loadable)
    return set(loadable[-model.policy_versions[0]:]) if loadable else set()

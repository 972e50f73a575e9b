"""The files an operator edits while the gateway runs: the rollouts and the API keys.

A server reads them once before it starts its workers (``read_files``), so that a bad
file stops the start once, with the problem named, instead of failing every worker.
This module stays light: the HTTP server's main process imports it.
"""

from __future__ import annotations

from serving.gateway.access.api_keys import KeyFileError, KeyStore
from serving.gateway.routing.rollouts import RolloutError, Router
from serving.gateway.settings import Settings, SettingsError


def read_files(settings: Settings) -> tuple[Router, KeyStore | None]:
    """The rollouts and the API keys that ``settings`` name."""
    try:
        return (Router(settings.models, settings.rollouts_file, settings.rollouts),
                KeyStore(settings.api_keys_file) if settings.api_keys_file else None)
    except (RolloutError, KeyFileError) as error:
        raise SettingsError(str(error)) from None

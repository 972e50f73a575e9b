"""API keys: who may call the prediction routes.

The gateway keeps no keys, only a file of salted hashes, one key per line, so that the
file can be shared with the deployment without sharing the keys::

    # <key id> <salt, hex> <SHA-256 of salt + key, hex>
    reviews-app 9f2c...e1 5b7d...04

Several lines may be valid at once, so a key is rotated by adding the new line, moving
clients over, then deleting the old line. The file is re-read within a second of a change
(no restart); a file that cannot be read keeps the previous keys and logs why. A presented
key is checked against every line in constant time per line; keys are never logged, key
ids are. ``python -m serving.gateway.access.api_keys create ID`` makes a key and its line.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import re
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serving.gateway.observability import metrics
from serving.gateway.watched_file import CHECK_SECONDS, WatchedFile

log = logging.getLogger(__name__)

KEY_PREFIX = "sk_"  # makes a leaked key easy to recognise (and to scan for)
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEX = re.compile(r"[0-9a-f]+")


class KeyFileError(ValueError):
    """The key file cannot be used; the message names the line."""


@dataclass(frozen=True)
class KeyHash:
    key_id: str
    salt: bytes
    digest: bytes

    def matches(self, key: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(self.salt + key.encode()).digest(), self.digest)


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_line(key_id: str, key: str) -> str:
    """The key file line of ``key`` under ``key_id``, with a fresh salt."""
    if not _KEY_ID.fullmatch(key_id):
        raise KeyFileError(f"key id {key_id!r}: use 1-64 letters, digits and ._-")
    salt = secrets.token_bytes(16)
    return f"{key_id} {salt.hex()} {hashlib.sha256(salt + key.encode()).hexdigest()}"


def parse_key_file(text: str, source: str) -> list[KeyHash]:
    hashes = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if (len(parts) != 3 or not _KEY_ID.fullmatch(parts[0]) or not _HEX.fullmatch(parts[1])
                or not _HEX.fullmatch(parts[2]) or len(parts[2]) != 64 or len(parts[1]) % 2):
            raise KeyFileError(f"{source} line {number}: expected '<key id> <salt hex> <sha256 hex>'")
        hashes.append(KeyHash(parts[0], bytes.fromhex(parts[1]), bytes.fromhex(parts[2])))
    return hashes


class KeyStore:
    def __init__(self, file: Path, check_seconds: float = CHECK_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``file`` is looked at for changes every ``check_seconds`` of ``clock``."""
        self._file = WatchedFile(file, check_seconds, clock)
        self._hashes = self._read()  # at start-up a bad file is an error

    def _read(self) -> list[KeyHash]:
        try:
            text = self._file.read()
        except (OSError, UnicodeDecodeError) as error:
            raise KeyFileError(f"cannot read the API key file {self._file.path}: {error}") from None
        return parse_key_file(text, str(self._file.path))

    def _refresh(self) -> None:
        if not self._file.changed():
            return
        try:
            self._hashes = self._read()
        except KeyFileError as error:
            # The previous keys stay: a revoked key among them stays valid until the file is fixed,
            # hence the metric (ApiKeyFileRejected) beside the log line.
            log.error("API keys not reloaded, the previous ones stay: %s", error)
            metrics.API_KEY_RELOADS.labels("error").inc()
            metrics.API_KEY_FILE_REJECTED.set(1)
            return
        log.info("API keys reloaded from %s: %d key(s)", self._file.path, len(self._hashes))
        metrics.API_KEY_RELOADS.labels("ok").inc()
        metrics.API_KEY_FILE_REJECTED.set(0)

    def identify(self, key: str | None) -> str | None:
        """The id of ``key`` when it is valid, else None."""
        self._refresh()
        if not key:
            return None
        found = None
        for entry in self._hashes:  # every line, so the time does not tell which one matched
            if entry.matches(key) and found is None:
                found = entry.key_id
        return found


def presented_key(authorization: str | None, api_key_header: str | None = None) -> str | None:
    """The key of ``Authorization: Bearer <key>`` (HTTP header or gRPC metadata), else of ``X-API-Key``."""
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return api_key_header.strip() if api_key_header and api_key_header.strip() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.gateway.access.api_keys", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="make a key; print it once, and its line for the key file")
    create.add_argument("key_id", help="a name for the key's holder, e.g. reviews-app (letters, digits, ._-)")
    args = parser.parse_args(argv)
    key = new_key()
    try:
        line = hash_line(args.key_id, key)
    except KeyFileError as error:
        parser.error(str(error))
    print(f"key (give it to the client; it is not stored anywhere): {key}", file=sys.stderr)
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""API keys: who may call the prediction routes.

The gateway keeps no keys, only a file of salted hashes, one key per line, so that the
file can be shared with the deployment without sharing the keys::

    # <key id> <salt, hex> <SHA-256 of salt + key, hex>
    reviews-app 9f2c...e1 5b7d...04

Several lines may be valid at once, so a key is rotated by adding the new line, moving
clients over, then deleting the old line. The file is re-read within a second of a change
(no restart); a file that cannot be read keeps the previous keys and logs why. A presented
key is checked against every line in constant time per line; keys are never logged, key
ids are.

``python -m serving.gateway.access.api_keys create ID --file FILE`` makes a key, prints it
(only it) on stdout, once, and adds its line to FILE; ``revoke ID --file FILE`` removes the
line. Both replace FILE in one rename, so the gateway never reads half of it. The module
needs the standard library only, so that any ``python3`` in the repository can run them.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serving.gateway.watched_file import CHECK_SECONDS, WatchedFile

log = logging.getLogger(__name__)

KEY_PREFIX = "sk_"  # makes a leaked key easy to recognise (and to scan for)
NEW_FILE_MODE = 0o600  # a file the command creates; one it rewrites keeps its mode
NEW_FILE_HEADER = ("# API keys of the sentiment gateway: <key id> <salt hex> <SHA-256 of salt + key, hex>.\n"
                   "# Edit with `python -m serving.gateway.access.api_keys create|revoke ID --file FILE`.\n")
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
    check_key_id(key_id)
    salt = secrets.token_bytes(16)
    return f"{key_id} {salt.hex()} {hashlib.sha256(salt + key.encode()).hexdigest()}"


def check_key_id(key_id: str) -> str:
    if not _KEY_ID.fullmatch(key_id):
        raise KeyFileError(f"key id {key_id!r}: use 1-64 letters, digits and ._-")
    return key_id


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
        except FileNotFoundError:
            raise KeyFileError(f"cannot read the API key file {self._file.path}: there is no such file; make it "
                               "with `python -m serving.gateway.access.api_keys create ID --file FILE` (FILE: the "
                               "file mounted there, docs/operations.md, \"API keys\")") from None
        except PermissionError as error:
            raise KeyFileError(f"cannot read the API key file {self._file.path}: {error}; the gateway runs as "
                               f"uid {os.getuid()}, which must be able to read it") from None
        except (OSError, UnicodeDecodeError) as error:
            raise KeyFileError(f"cannot read the API key file {self._file.path}: {error}") from None
        return parse_key_file(text, str(self._file.path))

    def _refresh(self) -> None:
        if not self._file.changed():
            return
        # Here, not at the top: the key commands run without the gateway's dependencies.
        from serving.gateway.observability import metrics

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


def _read_for_edit(file: Path) -> tuple[str, list[KeyHash]]:
    """The text and lines of ``file``, refusing one the gateway would refuse."""
    if file.is_dir():
        raise KeyFileError(f"{file} is a folder; name the key file inside it")
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "", []
    except (OSError, UnicodeDecodeError) as error:
        raise KeyFileError(f"cannot read {file}: {error}") from None
    return text, parse_key_file(text, str(file))


def _replace(file: Path, text: str) -> None:
    """Write ``text`` to a new file beside ``file`` and rename it over ``file``: a reader sees
    the old content or the new, never a part."""
    file.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(file.stat().st_mode) if file.exists() else NEW_FILE_MODE
    descriptor, temporary = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def create(file: Path, key_id: str) -> str:
    """A new key for ``key_id``, whose line is added to ``file`` (made, with its folder, if missing)."""
    check_key_id(key_id)
    text, entries = _read_for_edit(file)
    if any(entry.key_id == key_id for entry in entries):
        raise KeyFileError(f"{file} has a key {key_id!r} already: pick another id (e.g. {key_id}-2), "
                           f"or revoke that one first")
    key = new_key()
    if not text:
        text = NEW_FILE_HEADER
    elif not text.endswith("\n"):
        text += "\n"
    _replace(file, f"{text}{hash_line(key_id, key)}\n")
    return key


def revoke(file: Path, key_id: str) -> None:
    """Remove the line of ``key_id`` from ``file``."""
    check_key_id(key_id)
    text, entries = _read_for_edit(file)
    if not any(entry.key_id == key_id for entry in entries):
        raise KeyFileError(f"{file} has no key {key_id!r}")
    kept = [line for line in text.splitlines(keepends=True) if line.split()[:1] != [key_id]]
    _replace(file, "".join(kept))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.gateway.access.api_keys", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create_command = commands.add_parser(
        "create", help="make a key, print it (only it) on stdout, once, and add its line to the key file")
    revoke_command = commands.add_parser("revoke", help="remove a key's line from the key file")
    for command in (create_command, revoke_command):
        command.add_argument("key_id", help="the name of the key's holder, e.g. reviews-app (letters, digits, ._-)")
        command.add_argument("--file", type=Path, required=True,
                             help="the key file the gateway reads (compose: deploy/keys/local/api-keys)")
    args = parser.parse_args(argv)
    new_file = not args.file.exists()
    try:
        if args.command == "revoke":
            revoke(args.file, args.key_id)
            print(f"revoked {args.key_id}: its line is gone from {args.file}; gateways reading the file refuse "
                  "the key within a second", file=sys.stderr)
            return 0
        key = create(args.file, args.key_id)
    except (KeyFileError, OSError) as error:
        parser.error(str(error))
    print(key, flush=True)  # stdout holds the key and nothing else: `KEY=$(...)` takes it whole
    print(f"added {args.key_id} to {args.file}; the key above is shown once and stored nowhere", file=sys.stderr)
    if new_file:
        print(f"{args.file} is new, readable by you only (mode 600); a gateway running as another user "
              f"(compose: uid 10001) needs `chmod 644 {args.file}` (it holds hashes, not keys)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Encryption at rest of patient data (job inputs, results with their explanations, patient references) with
AES-256-GCM from `cryptography`. Columns use the `Encrypted*` types, so every read and write — ORM objects, bulk
updates — passes through here and no code path can store clear text by forgetting a call.

A stored value is `mq1:<key id>:<base64 nonce + ciphertext>`; the key id names the key, so keys rotate: new writes
use the current key, older rows stay readable while their key is listed. The column name is the associated data,
so a ciphertext copied into another column does not decrypt."""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from shared.errors import MedqError

if TYPE_CHECKING:
    from shared.settings import Settings

PREFIX = "mq1"
# The development key: public by construction (it is in the source), refused in production.
DEV_KEY_ID = "dev"
DEV_KEY = base64.b64encode(b"medq-development-key-not-secret!").decode()


class KeyringError(MedqError):
    title = "Encryption keys are misconfigured"


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]
    current: str

    @classmethod
    def parse(cls, spec: str, current: str) -> Keyring:
        """`spec` is `id:base64key,id:base64key`; each key must be 32 bytes (AES-256)."""
        keys: dict[str, bytes] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key_id, _, encoded = part.partition(":")
            try:
                key = base64.b64decode(encoded, validate=True)
            except ValueError as exc:
                raise KeyringError(f"data key {key_id!r} is not base64") from exc
            if len(key) != 32 or not key_id or ":" in key_id:
                raise KeyringError(f"data key {key_id!r} must be an id and 32 bytes of base64")
            keys[key_id] = key
        if current not in keys:
            raise KeyringError(f"the current data key {current!r} is not among the configured keys")
        return cls(keys, current)

    @property
    def is_development(self) -> bool:
        return self.keys.get(self.current) == base64.b64decode(DEV_KEY)

    def encrypt(self, plain: bytes, column: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, plain, column.encode())
        return f"{PREFIX}:{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str, column: str) -> bytes:
        prefix, key_id, payload = [*stored.split(":", 2), "", ""][:3]
        if prefix != PREFIX or key_id not in self.keys:
            raise KeyringError(f"cannot decrypt {column}: unknown format or key id {key_id!r}")
        raw = base64.b64decode(payload)
        try:
            return AESGCM(self.keys[key_id]).decrypt(raw[:12], raw[12:], column.encode())
        except InvalidTag as exc:
            raise KeyringError(f"{column} failed authentication (tampered, or the wrong key)") from exc


class _Installed:
    """The process's keyring. Column types cannot be handed settings, so start-up installs it here once."""

    lock = threading.Lock()
    keyring = Keyring.parse(f"{DEV_KEY_ID}:{DEV_KEY}", DEV_KEY_ID)


def install(keyring: Keyring, *, production: bool) -> None:
    """Make `keyring` the process's (API and worker start-up). Production refuses the development key."""
    if production and keyring.is_development:
        raise KeyringError("refusing to start in production with the development data key; set MEDQ_DATA_KEYS "
                           "and MEDQ_DATA_KEY_ID (generate a key with: medq data-key)")
    with _Installed.lock:
        _Installed.keyring = keyring


def keyring() -> Keyring:
    return _Installed.keyring


def install_from(settings: Settings) -> None:
    """Start-up of every process that reads or writes encrypted columns (API, workers, `medq db upgrade`)."""
    install(keyring_from(settings.data_keys, settings.data_key_id), production=settings.environment == "production")


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def keyring_from(data_keys: str, data_key_id: str) -> Keyring:
    """The keyring the settings describe; the development key when none is configured."""
    return Keyring.parse(data_keys or f"{DEV_KEY_ID}:{DEV_KEY}", data_key_id if data_keys else DEV_KEY_ID)


# Stored as text (base64), which survives every driver, dump and restore tool unchanged.
class EncryptedBytes(TypeDecorator[Any]):
    """Bytes in, bytes out; `mq1:…` text in the database. Subclasses change what is encrypted."""

    impl = Text
    cache_ok = True

    def __init__(self, column: str) -> None:
        super().__init__()
        self.column = column

    def encode(self, value: Any) -> bytes:
        return bytes(value)

    def decode(self, plain: bytes) -> Any:
        return plain

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else keyring().encrypt(self.encode(value), self.column)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.decode(keyring().decrypt(str(value), self.column))


class EncryptedText(EncryptedBytes):
    """A string (a secret), encrypted."""

    cache_ok = True

    def encode(self, value: Any) -> bytes:
        return str(value).encode()

    def decode(self, plain: bytes) -> Any:
        return plain.decode()


class EncryptedJSON(EncryptedBytes):
    """A JSON document (dicts and lists), encrypted whole."""

    cache_ok = True

    def encode(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def decode(self, plain: bytes) -> Any:
        return json.loads(plain)

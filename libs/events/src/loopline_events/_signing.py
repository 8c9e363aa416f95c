"""Who sent an event: HMAC-SHA256 signatures over envelopes, and the keyring that checks them.

A goal or a command says which tenant it acts for, and anyone who may write to agent.goals
could write any tenant there. So those events carry a signature: the sender's key id and an
HMAC of the envelope (every field but the signature, as canonical JSON) under the sender's
key. Memory holds the keyring, each key with the tenants its holder may act for, and takes an
event only if its signature is right and its signer may act for its tenant
(docs/decisions/0025-signed-envelopes.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from loopline_events._envelope import Envelope, Payload, Signature

ANY_TENANT = "*"
"""In a key's `acts_for`: the holder acts for every tenant (the services, the gateway)."""
KEY_BYTES = 32

P = TypeVar("P", bound=Payload)


def signed_bytes(envelope: Envelope[Any]) -> bytes:
    """What a signature covers: the envelope without its signature, as canonical JSON (keys
    sorted, no spaces, UTF-8), so a signer and a verifier in any language agree on it."""
    fields = envelope.model_dump(mode="json", exclude={"signature"})
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _mac(secret: bytes, envelope: Envelope[Any]) -> str:
    digest = hmac.new(secret, signed_bytes(envelope), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def decode_secret(text: str, *, what: str) -> bytes:
    """A key's bytes from its base64 text; ValueError naming `what` if it is not one."""
    try:
        secret = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what}: not base64") from None
    if len(secret) < KEY_BYTES:
        raise ValueError(f"{what}: {len(secret)} bytes; a key has at least {KEY_BYTES}")
    return secret


@dataclass(frozen=True)
class SigningKey:
    """The key a producer signs its goals and commands with."""

    key_id: str
    secret: bytes

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"

    def sign(self, envelope: Envelope[P]) -> Envelope[P]:
        """`envelope`, signed (whatever signature it had is replaced: it is not signed over)."""
        signature = Signature(key_id=self.key_id, mac=_mac(self.secret, envelope))
        return envelope.model_copy(update={"signature": signature})


@dataclass(frozen=True)
class Signer:
    """A key of the keyring: its secret and the tenants its holder may act for."""

    secret: bytes
    acts_for: frozenset[str]

    @property
    def acts_for_any(self) -> bool:
        return ANY_TENANT in self.acts_for

    def may_act_for(self, tenant: str) -> bool:
        return self.acts_for_any or tenant in self.acts_for


@dataclass(frozen=True)
class Verified:
    """A signature that holds: who signed, and whether they may act for every tenant."""

    key_id: str
    acts_for_any: bool


@dataclass(frozen=True)
class Refused:
    """Why an envelope's signature is not taken, for a human."""

    reason: str


class Keyring:
    """The keys memory checks signatures with: key id → secret and the tenants it acts for."""

    def __init__(self, signers: Mapping[str, Signer]) -> None:
        self._signers = dict(signers)

    def __repr__(self) -> str:
        return f"Keyring({sorted(self._signers)})"

    def __len__(self) -> int:
        return len(self._signers)

    @classmethod
    def of(cls, keys: Iterable[tuple[SigningKey, Iterable[str]]]) -> Keyring:
        """A keyring of these keys, each with the tenants it acts for."""
        return cls({k.key_id: Signer(k.secret, frozenset(acts)) for k, acts in keys})

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Keyring:
        """`{"keys": {key_id: {"secret": base64, "acts_for": [tenant | "*", ...]}}}`."""
        keys = document.get("keys")
        if not isinstance(keys, Mapping):
            raise ValueError('a keyring is {"keys": {key_id: {"secret": ..., "acts_for": [...]}}}')
        signers: dict[str, Signer] = {}
        for key_id, entry in keys.items():
            if not isinstance(entry, Mapping) or not isinstance(entry.get("secret"), str):
                raise ValueError(f"key {key_id!r}: needs a base64 `secret`")
            acts_for = entry.get("acts_for", [])
            if not isinstance(acts_for, list) or not all(isinstance(t, str) for t in acts_for):
                raise ValueError(f"key {key_id!r}: `acts_for` is a list of tenants")
            secret = decode_secret(entry["secret"], what=f"key {key_id!r}")
            signers[str(key_id)] = Signer(secret, frozenset(acts_for))
        return cls(signers)

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        """The keyring in the JSON file at `path`; ValueError saying what is wrong with it."""
        try:
            document = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the signing keys {path}: {exc}") from None
        try:
            return cls.from_json(document)
        except ValueError as exc:
            raise ValueError(f"the signing keys {path}: {exc}") from None

    def verify(self, envelope: Envelope[Any]) -> Verified | Refused:
        """Whether `envelope` is signed by a known key, unchanged, by one who may act for its
        tenant."""
        signature = envelope.signature
        if signature is None:
            return Refused("it is not signed")
        signer = self._signers.get(signature.key_id)
        if signer is None:
            return Refused(f"it is signed by an unknown key {signature.key_id!r}")
        if not hmac.compare_digest(_mac(signer.secret, envelope), signature.mac):
            return Refused(f"its signature by {signature.key_id!r} does not match its content")
        if not signer.may_act_for(envelope.tenant):
            return Refused(f"{signature.key_id!r} may not act for tenant {envelope.tenant!r}")
        return Verified(signature.key_id, signer.acts_for_any)

"""API tokens: ``kitaru_<id>_<secret>``, with one scope each, stored as a hash.

Scopes form a ladder, each allowing what the ones before it allow: ``read`` (every
GET), ``input`` (answer waits), ``run`` (start, replay, retry, resume, cancel) and
``admin`` (everything, including memory writes, schedules and tokens). The secret has
256 bits of entropy, so a plain SHA-256 is as good as a slow hash here and costs
microseconds per request; it is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass

from kitaru_core.errors import KitaruError, KitaruUsageError
from kitaru_core.store.metadata_store import MetadataStore
from kitaru_core.store.records import TokenRecord
from kitaru_core.untrusted import validate_name

SCOPES = ("read", "input", "run", "admin")
_PREFIX = "kitaru_"
_TOKEN = re.compile(r"kitaru_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TOUCH_EVERY = 60.0  # seconds between writes of a token's last use

log = logging.getLogger("kitaru.server")


class TokenRefused(Exception):
    """The request's token is missing, unknown, expired or revoked (HTTP 401)."""


def allows(granted: str, needed: str) -> bool:
    """Whether a token of scope ``granted`` may do what needs ``needed``."""
    return SCOPES.index(granted) >= SCOPES.index(needed)


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise KitaruUsageError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    return scope


def parse_duration(text: str) -> float:
    """``90d``, ``12h``, ``30m``, ``45s`` or ``2w`` in seconds."""
    found = _DURATION.fullmatch(text.strip())
    if not found or int(found.group(1)) == 0:
        raise KitaruUsageError(
            f"duration {text!r} is not valid: write a positive number and a unit, s, m, h, "
            "d or w (for example 90d)"
        )
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2)]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    token: str
    """Shown once: only its hash is stored."""
    record: TokenRecord


def create_token(
    store: MetadataStore, name: str, scope: str, *, expires_in: float | None = None
) -> NewToken:
    name = validate_name("token name", name)
    check_scope(scope)
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    now = time.time()
    record = TokenRecord(
        id=token_id,
        name=name,
        scope=scope,
        secret_hash=_digest(secret),
        created_at=now,
        expires_at=now + expires_in if expires_in else None,
    )
    if not store.tokens.add(record):
        raise KitaruUsageError(
            f"a token named {name!r} exists; revoke it (`kitaru tokens revoke {name}`) or "
            "choose another name"
        )
    return NewToken(f"{_PREFIX}{token_id}_{secret}", record)


def find_token(store: MetadataStore, name_or_id: str) -> TokenRecord:
    record = store.tokens.by_name(name_or_id) or store.tokens.get(name_or_id)
    if record is None:
        raise KitaruUsageError(f"no token named {name_or_id!r}; `kitaru tokens list` shows them")
    return record


def revoke_token(store: MetadataStore, name_or_id: str) -> TokenRecord:
    record = find_token(store, name_or_id)
    store.tokens.revoke(record.id, time.time())
    return find_token(store, record.id)


VERIFIED_FOR = 1.0
"""Seconds a verified token is taken on trust by store calls (``/api/v1/store/``)
before the store is asked again, so a flow process recording a checkpoint a
millisecond does not look its token up each time. A revocation takes effect on them
within this; on every other route at once."""
_REMEMBERED = 1024


class RecentTokens:
    """Tokens verified in the last :data:`VERIFIED_FOR` seconds, held in memory: asking
    it reads no store and needs no thread."""

    def __init__(self) -> None:
        self._verified: dict[str, tuple[float, TokenRecord]] = {}

    def get(self, presented: str | None) -> TokenRecord | None:
        """The token's record if it was verified a moment ago and has not expired since."""
        remembered = self._verified.get(presented) if presented else None
        if remembered is None:
            return None
        now = time.time()
        at, record = remembered
        if now - at > VERIFIED_FOR or (record.expires_at is not None and record.expires_at <= now):
            self._verified.pop(presented, None)  # type: ignore[arg-type]
            return None
        return record

    def remember(self, presented: str, record: TokenRecord) -> None:
        if len(self._verified) >= _REMEMBERED:
            self._verified.clear()  # many tokens at once: start over rather than grow
        self._verified[presented] = (time.time(), record)


class TokenChecker:
    """Checks the bearer token of each request against the store."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self._touched: dict[str, float] = {}
        self.recent = RecentTokens()

    def verify(self, presented: str | None) -> TokenRecord:
        record = self._verify(presented)
        self.recent.remember(presented or "", record)
        return record

    def _verify(self, presented: str | None) -> TokenRecord:
        if not presented:
            raise TokenRefused(
                "no token: send 'Authorization: Bearer TOKEN' (create one with "
                "`kitaru tokens create NAME --scope read`)"
            )
        found = _TOKEN.fullmatch(presented.strip())
        record = self.store.tokens.get(found.group(1)) if found else None
        if (
            found is None
            or record is None
            or not hmac.compare_digest(record.secret_hash, _digest(found.group(2)))
        ):
            raise TokenRefused("the token is not valid: check it, or create a new one")
        now = time.time()
        if record.revoked_at is not None:
            raise TokenRefused(f"token {record.name!r} was revoked; create a new one")
        if record.expires_at is not None and record.expires_at <= now:
            raise TokenRefused(f"token {record.name!r} has expired; create a new one")
        if now - self._touched.get(record.id, 0.0) >= _TOUCH_EVERY:
            self._touched[record.id] = now
            # Beside the request, never in its way: on SQLite the write may queue
            # behind another process's write lock for many seconds.
            threading.Thread(target=self._touch, args=(record.id, now), daemon=True).start()
        return record

    def _touch(self, token_id: str, now: float) -> None:
        try:
            self.store.tokens.touch(token_id, now)
        except KitaruError as exc:  # only a "last used" time: the next use tries again
            log.warning("could not record when token %s was last used: %s", token_id, exc)
            self._touched.pop(token_id, None)

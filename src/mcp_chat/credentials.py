"""Client ids are secrets: made with 192 random bits, stored only as a hash, logged redacted."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit, urlunsplit

_PREFIX = "mcc_"


def new_client_secret() -> str:
    """A fresh client_id: 24 random bytes (192 bits), URL-safe."""
    return _PREFIX + secrets.token_urlsafe(24)


def hash_secret(client_secret: str) -> str:
    """The key a participant is stored under; a stolen database yields no usable client_id."""
    return hashlib.sha256(client_secret.encode("utf-8", "surrogatepass")).hexdigest()


def matches(stored_hash: str, client_secret: str) -> bool:
    """Constant-time check of a client_id against a stored hash."""
    return hmac.compare_digest(stored_hash, hash_secret(client_secret))


def redact(client_secret: str) -> str:
    """What of a client_id may appear in logs and errors: enough to tell two apart, no more."""
    visible = client_secret[: len(_PREFIX) + 4] if client_secret.startswith(_PREFIX) else ""
    return f"{visible}…" if visible else "…"


def new_public_id(prefix: str) -> str:
    """An id others may see (participant ids, generated room ids)."""
    return f"{prefix}{secrets.token_hex(6)}"


def redact_url(url: str) -> str:
    """A store URL fit for a log line: a password in it (redis://user:pass@host) is hidden."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


_READ_PREFIX = "mcr_"


def read_key(secret_hash: str) -> str:
    """A participant's key for reading its room as MCP resources. It can read, not post, and
    is derived from the stored hash, so the server needs no extra state to check it."""
    return _READ_PREFIX + hashlib.sha256(f"read:{secret_hash}".encode()).hexdigest()[:32]

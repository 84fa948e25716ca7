"""Errors, API keys, rate limits, consent and content sniffing for the service.

Every error leaves the server as ``{"error": {"code": ..., "message": ...}}`` (see
:class:`ServiceError`); codes are stable, messages say what was expected and how to fix it.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from dataclasses import dataclass

from affectlens.service.config import ApiKey, ServiceConfig, hash_key

API_KEY_HEADER = "X-API-Key"
CONSENT_HEADER = "X-Consent"


class ServiceError(Exception):
    """An error with an HTTP status and a stable code.

    Args:
        status: HTTP status code.
        code: machine-readable code (``consent_required``, ``invalid_image``, ...).
        message: for humans: expected, got, fix.
        headers: extra response headers (e.g. ``Retry-After``).
    """

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key id (never the key), its rate limit per minute (0 = none) and its
    default emotion model (``None``: the server's)."""

    key_id: str
    rate_per_minute: int
    model: str | None = None


class KeyRing:
    """The accepted keys, compared by sha256 hash in constant time.

    Args:
        config: the service config (its keys and default rate limit).
    """

    def __init__(self, config: ServiceConfig):
        self.keys: tuple[ApiKey, ...] = config.load_keys()
        self.default_rate = config.rate_limit_per_minute

    @property
    def open_mode(self) -> bool:
        return not self.keys

    def authenticate(self, key: str | None) -> Principal:
        """The principal of a key; in open mode everyone is ``open``.

        Raises:
            ServiceError: 401 when the key is missing or unknown.
        """
        if self.open_mode:
            return Principal("open", self.default_rate)
        if not key:
            raise ServiceError(401, "unauthorized", f"missing API key: send it in the {API_KEY_HEADER} header")
        digest = hash_key(key)
        for k in self.keys:
            if hmac.compare_digest(digest, k.sha256):
                return Principal(k.key_id, self.default_rate if k.rate_per_minute is None else k.rate_per_minute,
                                 k.model)
        raise ServiceError(401, "unauthorized", f"invalid API key in the {API_KEY_HEADER} header")


class RateLimiter:
    """Sliding one-minute window per key (in memory, per server process)."""

    def __init__(self, window_s: float = 60.0):
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, who: Principal, now: float | None = None) -> None:
        """Count one request.

        Raises:
            ServiceError: 429 with ``Retry-After`` when the key is over its limit.
        """
        if who.rate_per_minute <= 0:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._hits.setdefault(who.key_id, deque())
            while q and q[0] <= now - self.window_s:
                q.popleft()
            if len(q) >= who.rate_per_minute:
                retry = max(1, int(q[0] + self.window_s - now + 0.999))
                raise ServiceError(429, "rate_limited",
                                   f"rate limit of {who.rate_per_minute} requests per minute reached for key "
                                   f"{who.key_id!r}; retry in {retry} s",
                                   headers={"Retry-After": str(retry)})
            q.append(now)


def check_consent(config: ServiceConfig, declared: str | None) -> str:
    """The declared consent basis, validated against the policy.

    Returns:
        the basis (``"not-declared"`` when the policy is off and none was given).

    Raises:
        ServiceError: 403 ``consent_required`` when missing or not an accepted basis.
    """
    basis = (declared or "").strip()
    accepted = ", ".join(config.consent_bases)
    if not config.consent_required:
        return basis or "not-declared"
    if not basis:
        raise ServiceError(403, "consent_required",
                           f"every analysis must declare the consent basis under which the people shown are "
                           f"analysed: send the {CONSENT_HEADER} header or a 'consent' field with one of: {accepted}")
    if basis not in config.consent_bases:
        raise ServiceError(403, "consent_required",
                           f"consent basis {basis[:60]!r} is not accepted by this server; expected one of: {accepted}")
    return basis


def check_origin(headers, allowed: tuple[str, ...] = ()) -> None:
    """Refuse a browser request sent from another site: its ``Origin`` must be this server (the
    ``Host`` it was sent to) or one of ``allowed`` (the configured CORS origins). Requests without
    ``Origin`` (curl, scripts) pass; browsers always send it on cross-site POSTs and WebSockets.

    Raises:
        ServiceError: 403 ``cross_origin``.
    """
    origin = headers.get("origin")
    if origin is None:
        if headers.get("sec-fetch-site") == "cross-site":
            raise ServiceError(403, "cross_origin", "cross-site request refused")
        return
    from urllib.parse import urlsplit

    host = (headers.get("host") or "").lower()
    try:
        netloc = urlsplit(origin).netloc.lower()
    except ValueError:
        netloc = ""
    if origin in allowed or (netloc and netloc == host):
        return
    raise ServiceError(403, "cross_origin", f"requests from origin {origin[:80]!r} are refused: only this server's "
                       "own pages and the configured CORS origins (--cors-origin) may call it from a browser")


# ---------------------------------------------------------------------- content sniffing
def looks_like_image(head: bytes) -> bool:
    """Whether the first bytes carry the signature of an image format we decode
    (:data:`affectlens.image_header.SUPPORTED_FORMATS`)."""
    from affectlens.image_header import detect_format

    return detect_format(head[:16]) is not None


def sniff_video(head: bytes) -> str | None:
    """The container suffix (``.mp4``, ``.mov``, ``.mkv``, ``.avi``, ...) from a video's first bytes,
    ``None`` when they are not a known container."""
    if head[4:8] == b"ftyp":
        return ".mov" if head[8:12] == b"qt  " else ".mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return ".mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return ".webm" if b"webm" in head[:64] else ".mkv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return ".avi"
    if head[:3] == b"FLV":
        return ".flv"
    if head[:4] == b"\x00\x00\x01\xba":
        return ".mpg"
    if head[:4] == b"\x30\x26\xb2\x75":
        return ".wmv"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return ".ts"
    return None

"""Reading uploads: raw bodies or ``multipart/form-data`` parsed as it streams in.

The file part goes straight to its destination (a new ``0600`` file) or to memory, never to a
temporary file elsewhere. When the consent basis has to come from a form field, that field must
precede the file part: the upload is refused (403) when the file part starts, before a byte of it
is stored. Storage failures are the server's fault and say so (503/507), never a client error.
Also what the upload routes document alike: their OpenAPI body (:func:`upload_body`) and errors
(:data:`UPLOAD_ERRORS`), and where a request's consent basis is read (:func:`consent_source`).
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import Callable

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from affectlens.service.schemas import ErrorResponse
from affectlens.service.security import CONSENT_HEADER, ServiceError

MAX_FIELDS = 32
MAX_FIELD_BYTES = 64 * 1024


def storage_error(exc: OSError) -> ServiceError:
    """The error a client sees when the server cannot store its upload (details go to the log only)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ServiceError(507, "insufficient_storage", "the server has no room to store this upload; retry "
                            "later or send a smaller file", headers={"Retry-After": "60"})
    return ServiceError(503, "storage_error", "the server cannot store uploads right now (a server problem, "
                        "logged); retry later", headers={"Retry-After": "30"})


def open_private(path: Path):
    """A new file only its owner can read and write (``0600``); fails when it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


class _Form:
    """Callbacks for python-multipart's streaming parser."""

    def __init__(self, sink: Callable[[], object], consent_first: Callable[[dict], bool]):
        self.sink, self.consent_first = sink, consent_first
        self.fields: dict[str, str] = {}
        self.file = None
        self.files = 0
        self._name = self._field = None
        self._hname = self._hvalue = b""
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict:
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end}

    def part_begin(self) -> None:
        self._headers, self._name, self._field = {}, None, None

    def header_field(self, data, start, end) -> None:
        self._hname += data[start:end]

    def header_value(self, data, start, end) -> None:
        self._hvalue += data[start:end]

    def header_end(self) -> None:
        self._headers[self._hname.lower()] = self._hvalue
        self._hname = self._hvalue = b""

    def headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self._name = name
        if name == "file":
            self.files += 1
            if self.files > 1:
                raise ServiceError(400, "bad_request", "multipart body has more than one part named 'file'")
            if not self.consent_first(self.fields):
                raise ServiceError(403, "consent_required",
                                   f"declare the consent basis before sending the file: the {CONSENT_HEADER} header, "
                                   "the 'consent' query parameter, or a 'consent' form field placed before the "
                                   "'file' part; nothing was stored")
            self.file = self.sink()
        elif b"filename" in params:
            raise ServiceError(400, "bad_request", f"multipart body has a file part named {name[:40]!r}; send the "
                               "content in a part named 'file' (-F file=@PATH) or as the raw request body")
        else:
            if len(self.fields) >= MAX_FIELDS:
                raise ServiceError(400, "bad_request", f"multipart body has more than {MAX_FIELDS} fields")
            self._field = bytearray()

    def part_data(self, data, start, end) -> None:
        if self._name == "file":
            self.file.write(data[start:end])
        elif self._field is not None:
            self._field += data[start:end]
            if len(self._field) > MAX_FIELD_BYTES:
                raise ServiceError(400, "bad_request", f"form field {self._name[:40]!r} is over "
                                   f"{MAX_FIELD_BYTES // 1024} KiB")

    def part_end(self) -> None:
        if self._field is not None and self._name:
            self.fields[self._name] = self._field.decode("utf-8", "replace")
        self._field = None


async def read_upload(request, dest: Path | None = None,
                      consent_known: bool = True) -> tuple[bytes | None, dict[str, str]]:
    """The uploaded bytes (or, with ``dest``, written there) and the multipart text fields.

    Args:
        request: the Starlette request.
        dest: write the content to this new file (``0600``) instead of returning it.
        consent_known: the consent basis came with the headers or query; when ``False`` a multipart
            body must carry a ``consent`` field before its ``file`` part.

    Raises:
        ServiceError: 400 malformed multipart or no ``file`` part; 403 the file part came before any
            consent; 503/507 the server cannot store the upload.
        PayloadTooLarge: the body is over the limit (raised while reading).
    """
    ctype = request.headers.get("content-type", "")
    try:
        if not ctype.startswith("multipart/form-data"):
            if dest is None:
                return await request.body(), {}
            with open_private(dest) as fh:
                async for chunk in request.stream():
                    fh.write(chunk)
            return None, {}
        return await _read_multipart(request, ctype, dest, consent_known)
    except OSError as exc:
        import logging

        logging.getLogger("affectlens.service").error("cannot store an upload: %s", exc)
        raise storage_error(exc) from None


async def _read_multipart(request, ctype: str, dest: Path | None, consent_known: bool):
    _, params = parse_options_header(ctype)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ServiceError(400, "bad_request", "malformed multipart body: no boundary in the Content-Type header")
    memory = io.BytesIO()
    form = _Form(sink=(lambda: open_private(dest)) if dest is not None else (lambda: memory),
                 consent_first=lambda fields: consent_known or bool(fields.get("consent")))
    try:
        parser = MultipartParser(boundary, form.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise ServiceError(400, "bad_request", f"malformed multipart body: {exc}") from None
    finally:
        if form.file is not None and form.file is not memory:
            form.file.close()
    if form.file is None:
        raise ServiceError(400, "bad_request", "multipart body has no file part named 'file'; send the content "
                           "as -F file=@PATH (or as the raw request body)")
    return (None if dest is not None else memory.getvalue()), form.fields


UPLOAD_ERRORS = {s: {"model": ErrorResponse, "description": d} for s, d in (
    (400, "malformed multipart body or no part named 'file'"), (401, "missing or invalid API key"),
    (403, "no valid consent declaration"), (413, "upload too large"), (415, "not an image/video format"),
    (422, "undecodable content or invalid option"), (429, "rate limit reached"), (503, "overloaded or starting"))}


def upload_body(what: str, fields: dict[str, dict]) -> dict:
    """OpenAPI request body: multipart with a ``file`` field and options, or the raw bytes."""
    props = {"file": {"type": "string", "format": "binary", "description": what},
             "consent": {"type": "string", "description": "consent basis (or the X-Consent header)"}, **fields}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": props}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def consent_source(request, header: str | None, fields: dict[str, str]) -> str | None:
    """The declared consent basis: the header, else the form field, else the query parameter."""
    return header or fields.get("consent") or request.query_params.get("consent")

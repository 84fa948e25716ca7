"""Service configuration: one dataclass, read from a TOML file and overridden by CLI flags.

API keys are never stored in clear: the key file holds one
``name:sha256hex[:rate_per_minute][:model=NAME]`` line per key (``#`` comments allowed;
``model=`` gives the key a default model, one the server serves); :func:`add_api_key` creates a
random key, appends its hash
and returns the key once. Without any key the server runs in *open mode*, which is only allowed
on a loopback address and is logged as a warning at start-up.

Example:
    >>> cfg = ServiceConfig(data_dir="./data", api_key_file="keys.txt")
    >>> cfg.validate()
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

#: Consent bases accepted by default (the ``X-Consent`` header or ``consent`` field names one).
DEFAULT_CONSENT_BASES = ("subject-consented", "research-protocol", "contract")


def hash_key(key: str) -> str:
    """sha256 hex digest of an API key (what the key file and the database store)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One accepted API key, known only by its hash.

    Attributes:
        key_id: a name for logs and the audit table (never the key itself).
        sha256: hex digest of the key.
        rate_per_minute: this key's request limit (``None`` = the service default).
        model: this key's default emotion model (a name the server serves; ``None`` = the server's default).
    """

    key_id: str
    sha256: str
    rate_per_minute: int | None = None
    model: str | None = None


def read_key_file(path: str | os.PathLike) -> list[ApiKey]:
    """Parse a key file of ``name:sha256hex[:rate_per_minute][:model=NAME]`` lines.

    Raises:
        ValueError: a malformed line (the message names the file and line number).
    """
    keys = []
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(":")
        if len(parts) not in (2, 3, 4) or len(parts[1]) != 64 or not all(c in "0123456789abcdef" for c in parts[1]):
            raise ValueError(f"{path}:{n}: expected 'name:sha256hex[:rate_per_minute][:model=NAME]' (64 lowercase "
                             f"hex digits), got {line[:80]!r}")
        rate = model = None
        for extra in parts[2:]:
            if extra.startswith("model=") and model is None and len(extra) > 6:
                model = extra[6:]
            elif extra.isdigit() and int(extra) >= 1 and rate is None:
                rate = int(extra)
            else:
                raise ValueError(f"{path}:{n}: expected a positive rate_per_minute or model=NAME after the hash, "
                                 f"got {extra!r}")
        keys.append(ApiKey(parts[0], parts[1], rate, model))
    return keys


def add_api_key(path: str | os.PathLike, name: str, rate_per_minute: int | None = None,
                model: str | None = None) -> str:
    """Create a random API key, append its hash to the key file and return the key (shown once).

    Raises:
        ValueError: a name (or model name) with characters other than letters, digits, ``-``, ``_`` or ``.``.
    """
    for what, v in (("key name", name), ("model name", model)):
        if (what == "key name" or v is not None) and (not v or not all(c.isalnum() or c in "-_." for c in v)):
            raise ValueError(f"{what} must use letters, digits, '-', '_' or '.', got {v!r}")
    key = "al_" + secrets.token_urlsafe(32)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = (f"{name}:{hash_key(key)}" + (f":{rate_per_minute}" if rate_per_minute else "")
            + (f":model={model}" if model else "") + "\n")
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(line)
    os.chmod(p, 0o600)
    return key


def is_loopback(host: str) -> bool:
    """``True`` for ``localhost``, ``127.0.0.0/8`` and ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServiceConfig:
    """Everything the service needs; ``validate()`` is called by ``create_app``.

    Attributes:
        host / port: where ``affectlens serve`` listens.
        data_dir: uploads, job outputs and (by default) the database live here.
        database_url: any SQLAlchemy URL, e.g. ``sqlite:///PATH`` or
            ``postgresql+psycopg://USER:PASSWORD@HOST/DBNAME`` (default ``sqlite:///<data_dir>/affectlens.db``).
            Several server processes may share one database.
        api_key_file: file of hashed keys (see :func:`read_key_file`).
        api_keys: keys given programmatically (added to those of the file).
        consent_required: refuse analyses without a declared consent basis (403).
        consent_bases: accepted bases.
        max_upload_mb: largest video upload.
        max_image_mb: largest image (upload or stream frame).
        result_ttl_hours: job results and media are deleted this long after the job ends.
        rate_limit_per_minute: requests per key per minute on ``/v1`` (0 = no limit).
        rate_limit_store: ``"database"`` (counted in the database, so the limit holds across every
            server process sharing it) or ``"memory"`` (per process; no database write per request).
        max_inflight: image/stream analyses running or waiting at once; more get 503.
        max_workers: video jobs running at once (one process each).
        max_attempts: runs of a job before a crashed worker makes it fail for good.
        job_timeout_s: a worker running longer is killed and its job failed.
        cleanup_interval_s: how often expired results are deleted.
        cors_origins: allowed browser origins; empty = CORS off.
        header_timeout_s: a request's line and headers must arrive within this (else 408, closed).
        body_timeout_s: a request body may stall this long; after it, it must average at least
            ``min_body_bytes_per_s`` (else 408, closed).
        min_body_bytes_per_s: slowest accepted average upload rate once ``body_timeout_s`` has passed.
        max_connections: open connections at once; more are answered 503 and closed before reading.
        db_busy_timeout_s: a request waits this long for a locked database, then answers 503.
        threads: ONNX Runtime threads per model session, in the API process and in every worker
            process (0 = ONNX Runtime's default, every core; set it so that ``max_inflight`` analyses
            and ``max_workers`` jobs share the cores without oversubscribing them).
        job_lease_s: a running job's lease, renewed by its server; a job whose server died is re-run
            (by any server on the database) once its lease has expired.
        video_defaults: default :class:`RunOptions` fields for jobs (``fps``, ``interval_s``, ...).
        model: the default emotion model (a shipped name or a model folder; ``None`` = the shipped
            default in the variant for this CPU).
        allowed_models: more models clients may name (shipped names or model folders).
        models_dir: a folder of model folders, each one allowed under its folder name.
        max_loaded_models: models kept loaded in the API process at once (least recently used dropped).
        engine: where video jobs run: ``"local"`` (one worker process per job, on this machine) or
            ``"ray"`` (Ray tasks, the engine of ``affectlens batch --engine ray``).
        ray_address: the Ray cluster to join (``"auto"``, ``"ray://HOST:10001"``); ``None`` starts a
            local Ray instance (or uses the one this process already initialised).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./affectlens-data")
    database_url: str | None = None
    api_key_file: Path | None = None
    api_keys: tuple[ApiKey, ...] = ()
    consent_required: bool = True
    consent_bases: tuple[str, ...] = DEFAULT_CONSENT_BASES
    max_upload_mb: float = 500.0
    max_image_mb: float = 20.0
    result_ttl_hours: float = 24.0
    rate_limit_per_minute: int = 120
    rate_limit_store: str = "database"
    max_inflight: int = 8
    max_workers: int = 1
    max_attempts: int = 2
    job_timeout_s: float = 3600.0
    cleanup_interval_s: float = 300.0
    cors_origins: tuple[str, ...] = ()
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    min_body_bytes_per_s: float = 1024.0
    max_connections: int = 1024
    db_busy_timeout_s: float = 5.0
    job_lease_s: float = 30.0
    threads: int = 0
    video_defaults: dict = field(default_factory=dict)
    model: str | None = None
    allowed_models: tuple[str, ...] = ()
    models_dir: Path | None = None
    max_loaded_models: int = 4
    engine: str = "local"
    ray_address: str | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "data_dir", Path(self.data_dir))
        if self.api_key_file is not None:
            set_(self, "api_key_file", Path(self.api_key_file))
        set_(self, "api_keys", tuple(self.api_keys))
        set_(self, "consent_bases", tuple(self.consent_bases))
        set_(self, "cors_origins", tuple(self.cors_origins))
        set_(self, "allowed_models", tuple(str(m) for m in self.allowed_models))
        if self.models_dir is not None:
            set_(self, "models_dir", Path(self.models_dir))

    def resolved(self) -> "ServiceConfig":
        """A copy whose file paths are absolute, resolved once against the current directory.

        The service stores and deletes only absolute paths, so that nothing depends on the working
        directory of the server or its workers (a relative data folder is where the process started).
        """
        def absolute(p: Path | None) -> Path | None:
            return None if p is None else Path(os.path.abspath(p.expanduser()))

        def model_ref(m: str | None) -> str | None:  # a path (it exists) made absolute; a shipped name as is
            return str(absolute(Path(m))) if m and Path(m).expanduser().exists() else m

        return dataclasses.replace(self, data_dir=absolute(self.data_dir), api_key_file=absolute(self.api_key_file),
                                   models_dir=absolute(self.models_dir), model=model_ref(self.model),
                                   allowed_models=tuple(model_ref(m) for m in self.allowed_models))

    # ------------------------------------------------------------------ derived values
    @property
    def database(self) -> str:
        """The database URL: :attr:`database_url`, or a SQLite file in :attr:`data_dir`."""
        return self.database_url or f"sqlite:///{self.data_dir / 'affectlens.db'}"

    @property
    def db_path(self) -> Path | None:
        """The SQLite file of :attr:`database`, ``None`` for other databases.

        Raises:
            ValueError: a malformed URL.
        """
        from affectlens.service.db import database_url

        url = database_url(self.database)
        return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None

    def load_keys(self) -> tuple[ApiKey, ...]:
        """Keys from :attr:`api_keys` and :attr:`api_key_file`."""
        keys = list(self.api_keys)
        if self.api_key_file is not None:
            keys += read_key_file(self.api_key_file)
        return tuple(keys)

    def validate(self) -> None:
        """Check values and the open-mode rule.

        Raises:
            ValueError: what is wrong and how to fix it.
        """
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        for name in ("max_upload_mb", "max_image_mb", "result_ttl_hours", "job_timeout_s", "cleanup_interval_s",
                     "header_timeout_s", "body_timeout_s", "db_busy_timeout_s", "job_lease_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = ONNX Runtime's default), got {self.threads}")
        if self.min_body_bytes_per_s < 0:
            raise ValueError(f"min_body_bytes_per_s must be >= 0, got {self.min_body_bytes_per_s}")
        if self.engine not in ("local", "ray"):
            raise ValueError(f"engine must be 'local' or 'ray', got {self.engine!r}")
        if self.engine == "ray":
            import importlib.util

            if importlib.util.find_spec("ray") is None:
                raise ValueError("engine 'ray' needs Ray: pip install 'affectlens[batch]' (or use --engine local)")
        for name in ("max_inflight", "max_workers", "max_attempts", "max_connections", "max_loaded_models"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rate_limit_per_minute < 0:
            raise ValueError(f"rate_limit_per_minute must be >= 0, got {self.rate_limit_per_minute}")
        if self.consent_required and not self.consent_bases:
            raise ValueError("consent_required is on but consent_bases is empty: list the accepted bases")
        if self.api_key_file is not None and not self.api_key_file.is_file():
            raise ValueError(f"api_key_file {self.api_key_file}: no such file (create one with "
                             "'affectlens serve --new-key NAME --api-key-file FILE')")
        if self.rate_limit_store not in ("database", "memory"):
            raise ValueError(f"rate_limit_store must be 'database' or 'memory', got {self.rate_limit_store!r}")
        self.check_database()
        if not self.load_keys() and not is_loopback(self.host):
            raise ValueError(f"no API keys configured and host {self.host!r} is not a loopback address: open mode "
                             "is only allowed on 127.0.0.1/::1. Give --api-key-file (see --new-key).")

    def check_database(self) -> None:
        """Check that :attr:`database` is a SQLAlchemy URL whose driver is installed (no connection).

        Raises:
            ValueError: a malformed URL, an unknown dialect or a missing driver; the message shows the
                URL with its password masked and says how to fix it.
        """
        try:
            from affectlens.service.db import check_driver, database_url
        except ImportError as exc:  # SQLAlchemy itself is missing
            raise ValueError(f"the service database needs SQLAlchemy: pip install 'affectlens[service]' ({exc})") \
                from None
        check_driver(database_url(self.database))

    @property
    def open_mode(self) -> bool:
        return not self.load_keys()

    def public_dict(self) -> dict:
        """The resolved configuration without key hashes or database password (written next to the data)."""
        from affectlens.service.db import mask_url

        d = dataclasses.asdict(self)
        d["api_keys"] = [k["key_id"] for k in d["api_keys"]]
        d["database_url"] = mask_url(self.database)
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_toml(cls, path: str | os.PathLike, **overrides) -> "ServiceConfig":
        """Read ``[service]`` (or top-level) keys from a TOML file; ``overrides`` (not ``None``) win.

        Raises:
            ValueError: unknown keys or a malformed file.
        """
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{path}: cannot read service config ({exc})") from None
        data = data.get("service", data)
        known = {f.name for f in dataclasses.fields(cls)} - {"api_keys"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown service setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

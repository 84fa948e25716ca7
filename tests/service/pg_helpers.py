"""A throw-away PostgreSQL server for tests: ``$AFFECTLENS_TEST_POSTGRES_URL`` when set, else a cluster
made with the local ``initdb``/``pg_ctl`` (Debian's ``postgresql`` package) in a temporary folder,
listening on a free loopback port, stopped and deleted afterwards.

PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres`` user. Tests that
use :func:`postgres_url` are skipped, with the reason, when no server and no driver can be had.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from service_helpers import free_port

ENV_URL = "AFFECTLENS_TEST_POSTGRES_URL"


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return found[-1] if found else shutil.which(name)


def _as_owner(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@pytest.fixture(scope="session")
def postgres_url():
    """A ``postgresql+psycopg://`` URL of an empty database (skips the test when none can be had)."""
    pytest.importorskip("psycopg", reason="PostgreSQL driver missing: pip install 'affectlens[postgres]'")
    if os.environ.get(ENV_URL):
        yield os.environ[ENV_URL]
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL not available: no initdb/pg_ctl (apt-get install postgresql) and "
                    f"no ${ENV_URL}")
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL cannot run as root and there is no 'postgres' user")
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL as 'postgres'")
        user = "postgres"
    root = Path(tempfile.mkdtemp(prefix="affectlens-pg-"))
    if user:
        shutil.chown(root, user)
    data, port = root / "data", free_port()
    try:
        r = subprocess.run(_as_owner([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                                      "--no-sync"], user), capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            pytest.skip(f"PostgreSQL not available: initdb failed: {r.stderr[-300:]}")
        r = subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
                                      f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off "
                                      "-c max_connections=100", "start"], user),
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            log = (root / "log").read_text(errors="replace")[-300:] if (root / "log").exists() else r.stderr
            pytest.skip(f"PostgreSQL not available: pg_ctl start failed: {log}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], user),
                       capture_output=True, timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)

"""CurveZMQ keys of a run: generated once into ``RUN/keys`` (directory 0700, files 0600).

Every slurmgen server socket (registry ROUTER and PUB, peer inboxes) uses the run's
server key pair and admits only clients presenting the run's client key (checked by a
ZAP authenticator). A process without the files — another user on the same node —
can neither connect, inject a message, nor read one.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq.auth

from slurmgen.errors import ConfigError


@dataclass(frozen=True)
class CurveKeys:
    server_public: bytes
    server_secret: bytes
    client_public: bytes
    client_secret: bytes
    allowed_dir: Path  # public keys of admitted clients


def key_dir(run_root: Path) -> Path:
    return run_root / "keys"


def generate(run_root: Path) -> None:
    """Create the run's key pairs unless they exist (a resumed run keeps its keys)."""
    keys = key_dir(run_root)
    if (keys / "client.key_secret").exists():
        return
    tmp = run_root / ".keys.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700, parents=True)
    zmq.auth.create_certificates(tmp, "server")
    zmq.auth.create_certificates(tmp, "client")
    (tmp / "allowed").mkdir(mode=0o700)
    shutil.copy(tmp / "client.key", tmp / "allowed" / "client.key")
    for path in tmp.rglob("*"):
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    os.replace(tmp, keys)


def load(run_root: Path) -> CurveKeys:
    keys = key_dir(run_root)
    try:
        server_public, server_secret = zmq.auth.load_certificate(keys / "server.key_secret")
        client_public, client_secret = zmq.auth.load_certificate(keys / "client.key_secret")
    except OSError as exc:
        raise ConfigError(f"cannot read the run's CurveZMQ keys in {keys}: {exc}. They are made by the driver; "
                          "run this process as the user who started the run") from exc
    if server_secret is None or client_secret is None:
        raise ConfigError(f"{keys}: a secret key is missing; delete the directory to regenerate it")
    return CurveKeys(server_public, server_secret, client_public, client_secret, keys / "allowed")


def load_if_present(run_root: Path) -> CurveKeys | None:
    """The run's keys when the driver made them (run.curve=true), else None."""
    return load(run_root) if (key_dir(run_root) / "client.key_secret").exists() else None


def prepare_keys(run_root: Path, enabled: bool) -> None:
    """run.curve=true: make sure the keys exist; false: remove them (plain TCP)."""
    if enabled:
        generate(run_root)
    else:
        shutil.rmtree(key_dir(run_root), ignore_errors=True)

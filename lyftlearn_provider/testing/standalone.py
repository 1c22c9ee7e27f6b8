"""Airflow itself, for the demo and for tests that need its scheduler: ``airflow standalone`` in a subprocess.

``dag.test()`` runs one DAG run in-process and covers most tests; what it cannot show — a run the
scheduler starts, an asset event that triggers another DAG, a triggerer killed and restarted — needs
the real components. :class:`Standalone` starts them (scheduler, DAG processor, triggerer, API
server) with an isolated ``AIRFLOW_HOME`` and fast loops, waits until they parse the DAGs, and stops
every component, children first, so no scheduler is left orphaned.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def airflow_env(home: Path, dags_folder: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment of the Airflow processes: isolated home, these DAGs, fast loops."""
    env = {**os.environ, **(extra or {})}
    port = free_port()
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__LYFTLEARN__POLL_INTERVAL": "2",
            "PYTHONUNBUFFERED": "1",
            # airflow standalone starts its components as `airflow ...` from PATH.
            "PATH": os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))),
        }
    )
    return env


#: The settings of :func:`airflow_env` that make the components quick to notice things (seconds).
FAST_LOOPS = {
    "dag_processor": {"refresh_interval": "5", "min_file_process_interval": "5"},
    "scheduler": {"scheduler_heartbeat_sec": "1"},
    "triggerer": {"job_heartbeat_sec": "1"},
    "lyftlearn": {"poll_interval": "2"},
}


def write_config(
    home: Path,
    dags_folder: Path,
    *,
    port: int,
    host: str = "127.0.0.1",
    extra: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """Write ``home/airflow.cfg``: these DAGs, the API server on ``port``, no login, fast loops.

    Every ``airflow`` command run with ``AIRFLOW_HOME=home`` finds the same settings later, with no
    environment variables to repeat. The secrets (JWT, Fernet, API) are fresh for each home.
    """
    import configparser
    import secrets

    from cryptography.fernet import Fernet

    sections: dict[str, dict[str, str]] = {
        "core": {
            "dags_folder": str(dags_folder),
            "load_examples": "False",
            "auth_manager": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            # Every visitor is an admin: no login page (a local demo; never for a shared installation).
            "simple_auth_manager_all_admins": "True",
            "execution_api_server_url": f"http://{host}:{port}/execution/",
            "fernet_key": Fernet.generate_key().decode(),
        },
        "database": {"sql_alchemy_conn": f"sqlite:///{home / 'airflow.db'}"},
        "api": {"host": host, "port": str(port), "base_url": f"http://{host}:{port}"},
        "api_auth": {"jwt_secret": secrets.token_urlsafe(48)},
        "logging": {"base_log_folder": str(home / "logs")},
    }
    for settings in (FAST_LOOPS, extra or {}):
        for section, values in settings.items():
            sections.setdefault(section, {}).update(values)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(sections)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "airflow.cfg"
    with path.open("w") as file:
        parser.write(file)
    return path


def store_connections(connections: Mapping[str, Mapping[str, Any]]) -> None:
    """Create (or replace) Airflow connections in the metadata database of this process's ``AIRFLOW_HOME``.

    :param connections: connection id to ``conn_type``, ``login``, ``password``, ``extra`` (a dict) ...
    """
    import json

    from airflow.models import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        for conn_id, fields in connections.items():
            session.execute(delete(Connection).where(Connection.conn_id == conn_id))
            values = dict(fields)
            if isinstance(values.get("extra"), Mapping):
                values["extra"] = json.dumps(values["extra"])
            session.add(Connection(conn_id=conn_id, **values))


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T:
    """Poll ``check`` until it returns something truthy; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f}s")


def stop_process_tree(process: subprocess.Popen[bytes]) -> None:
    """Stop a process and all its children, children first (SIGTERM, then SIGKILL after 20 s)."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for child in children:
        child.terminate()
    psutil.wait_procs(children, timeout=20)
    for child in children:
        if child.is_running():
            child.kill()
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


class Standalone:
    """``airflow standalone`` for the length of a ``with`` block.

    :param env: the environment of every Airflow process (see :func:`airflow_env`); the calling process
        should have the same ``AIRFLOW_HOME`` to read the metadata database.
    :param log: where the components' output goes.
    """

    def __init__(self, env: Mapping[str, str], log: Path, *, migrate: bool = True) -> None:
        self.env = dict(env)
        self.log_path = log
        self.migrate = migrate
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def airflow(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """Run an ``airflow`` command against this installation; raise if it fails."""
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=self.env, check=True, capture_output=True
        )

    def __enter__(self) -> Standalone:
        if self.migrate:
            self.airflow("db", "migrate")
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._process is not None:
            stop_process_tree(self._process)
        if self._log is not None:
            self._log.close()

    def wait_until_parsed(self, *dag_ids: str, timeout: float = 180) -> None:
        """Wait until the DAG processor has stored every DAG in ``dag_ids``; raise on an import error."""
        from lyftlearn_provider.testing._airflow_db import dag_is_parsed, import_errors

        def parsed(dag_id: str) -> bool:
            errors = import_errors()
            if errors:
                raise RuntimeError(f"the DAG processor could not import: {errors}")
            return dag_is_parsed(dag_id)

        for dag_id in dag_ids:
            wait_for(f"DAG {dag_id} to be parsed", functools.partial(parsed, dag_id), timeout)

    def unpause(self, *dag_ids: str) -> None:
        """Unpause the DAGs, as the UI's toggle does."""
        for dag_id in dag_ids:
            self.airflow("dags", "unpause", dag_id)

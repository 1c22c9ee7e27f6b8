"""pytest fixtures for testing DAGs offline (registered through the ``pytest11`` entry point).

Fixtures start their emulators only when a test asks for them; loading the plugin itself costs a
pytest run about half a second of imports.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lyftlearn_provider.testing.aws.fixtures import aws, aws_emulator
from lyftlearn_provider.testing.k8s.fixtures import k8s, k8s_emulator

__all__ = ["airflow_db", "aws", "aws_emulator", "k8s", "k8s_emulator"]


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Create (or upgrade) the Airflow metadata database named by ``AIRFLOW_HOME``; return that home.

    Point ``AIRFLOW_HOME`` at a temporary folder before Airflow is imported (e.g. at the top of your
    ``conftest.py``): this fixture refuses to migrate a home that has no ``airflow.cfg`` yet only
    when the variable is unset, so a real installation's database is never touched by accident.
    """
    home = os.environ.get("AIRFLOW_HOME")
    if not home:
        raise pytest.UsageError(
            "AIRFLOW_HOME is not set: point it at a temporary folder in conftest.py before importing Airflow."
        )
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
    )
    return home

"""pytest fixtures for testing DAGs offline, against local AWS and Kubernetes emulators. Opt-in.

Nothing is added to a pytest session until a ``conftest.py`` asks for it::

    pytest_plugins = ["lyftlearn_provider.testing.pytest_plugin"]

(needs ``pip install airflow-provider-lyftlearn[testing]``). The fixtures carry the provider's prefix, so
they never shadow a project's own ``aws`` or ``k8s``:

- ``lyftlearn_airflow_db`` (session): a migrated Airflow metadata database in ``AIRFLOW_HOME``;
- ``lyftlearn_aws`` (per test): a clean AWS emulator (SageMaker training jobs, ECR, S3, SQS,
  EventBridge, STS ...), with boto3, aiobotocore and the ``aws_default`` connection pointed at it;
- ``lyftlearn_k8s`` (per test): a clean Kubernetes emulator, with ``KUBECONFIG`` and the
  ``kubernetes_default`` connection pointed at it;
- ``lyftlearn_aws_emulator`` and ``lyftlearn_k8s_emulator`` (session): the servers behind them.

Emulators start only when a test asks for them; loading the plugin costs about half a second of imports.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lyftlearn_provider.testing.aws.fixtures import lyftlearn_aws, lyftlearn_aws_emulator
from lyftlearn_provider.testing.k8s.fixtures import lyftlearn_k8s, lyftlearn_k8s_emulator

__all__ = [
    "lyftlearn_airflow_db",
    "lyftlearn_aws",
    "lyftlearn_aws_emulator",
    "lyftlearn_k8s",
    "lyftlearn_k8s_emulator",
]


@pytest.fixture(scope="session")
def lyftlearn_airflow_db() -> str:
    """Create (or upgrade) the Airflow metadata database named by ``AIRFLOW_HOME``; return that home.

    Point ``AIRFLOW_HOME`` at a temporary folder before Airflow is imported (e.g. at the top of your
    ``conftest.py``): the fixture refuses to run when the variable is unset, so a real installation's
    database is never migrated by accident.
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

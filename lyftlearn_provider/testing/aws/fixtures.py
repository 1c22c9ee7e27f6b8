"""pytest fixtures for the AWS emulator.

``lyftlearn_aws_emulator`` is one server for the whole session; ``lyftlearn_aws`` gives each test a
clean emulator and points boto3, aiobotocore and Airflow's ``aws_default`` connection at it through the
environment. Opt in with ``pytest_plugins = ["lyftlearn_provider.testing.pytest_plugin"]``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from lyftlearn_provider.testing.aws.server import AwsEmulator

# Variables that would send clients elsewhere or make them use other credentials than the emulator's.
_CONFLICTING_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


@pytest.fixture(scope="session")
def lyftlearn_aws_emulator() -> Iterator[AwsEmulator]:
    """Run one AWS emulator for the test session."""
    # Imported here so that loading the fixtures (in every pytest run) does not import moto.
    from lyftlearn_provider.testing.aws.server import AwsEmulator

    with AwsEmulator() as emulator:
        yield emulator


@pytest.fixture
def lyftlearn_aws(
    lyftlearn_aws_emulator: AwsEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AwsEmulator]:
    """Reset the emulator and point every AWS client of this test at it; yield the emulator."""
    aws_emulator = lyftlearn_aws_emulator
    aws_emulator.control.reset()
    for name in _CONFLICTING_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        # Service-specific endpoints (AWS_ENDPOINT_URL_S3, ...) would win over AWS_ENDPOINT_URL.
        if name.startswith("AWS_ENDPOINT_URL_"):
            monkeypatch.delenv(name)
    for name, value in aws_emulator.env().items():
        monkeypatch.setenv(name, value)
    for name in ("NO_PROXY", "no_proxy"):
        # Keep local traffic away from any HTTP proxy configured for the machine.
        existing = os.environ.get(name)
        monkeypatch.setenv(name, f"{existing},{aws_emulator.host}" if existing else aws_emulator.host)
    yield aws_emulator

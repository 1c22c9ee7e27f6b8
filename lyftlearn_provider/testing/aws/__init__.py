"""A local AWS for testing DAGs offline: moto's server plus realistic SageMaker training jobs.

moto alone marks a training job Completed the moment it is created, cannot stop one, and never
emits EventBridge events. This emulator serves CreateTrainingJob, DescribeTrainingJob,
StopTrainingJob and ListTrainingJobs itself, with the states, validation, errors, warm pools and
"SageMaker Training Job State Change" events of the real service, as well as ListTags, AddTags and
DeleteTags on training-job ARNs, and passes every other request (tags of other SageMaker resources,
S3, SQS, EventBridge, ECR, STS, CloudWatch Logs, ...) to moto. Your code reaches it only through
``endpoint_url`` / ``AWS_ENDPOINT_URL``, like any AWS endpoint.

In pytest, opt in with ``pytest_plugins = ["lyftlearn_provider.testing.pytest_plugin"]`` and request
the ``lyftlearn_aws`` fixture (``aws`` below): it gives each test a reset emulator and sets
``AWS_ENDPOINT_URL``, dummy credentials, ``AWS_DEFAULT_REGION`` and ``AIRFLOW_CONN_AWS_DEFAULT``, so
boto3, aiobotocore and Airflow hooks all talk to it. A new job stays ``InProgress``/``Starting``
until something moves it. For a whole DAG run, let the autopilot play SageMaker::

    def test_training_dag(lyftlearn_aws):
        aws = lyftlearn_aws
        aws.control.autopilot(phases={"Starting": 0.1, "Training": 0.2}, metrics={"validation:auc": 0.91})
        dag.test()  # the operator creates the job and waits for it
        [job] = aws.control.jobs()
        assert job["TrainingJobStatus"] == "Completed"
        assert len(aws.control.calls(action="CreateTrainingJob")) == 1

or drive a job step by step (timestamps can be pinned with ``at=``)::

    aws.control.advance("train-1", "Training")
    aws.control.complete("train-1", metrics={"validation:auc": 0.91})
    # ... or instead: aws.control.fail("train-1", "AlgorithmError: out of memory")
    # ... or instead: aws.control.stop("train-1")  (someone else stopped it)

and break the network on purpose::

    aws.control.inject("throttle", 3, service="sagemaker")  # next 3 SageMaker calls throttled
    aws.control.inject("reset", action="CreateTrainingJob", after=True)  # created, but the client never heard
    aws.control.inject("access_denied", 10**6, action="ListTrainingJobs")  # the role lacks the permission

Outside pytest, use ``with AwsEmulator() as aws: ...`` (``aws.env()`` gives the environment for a
subprocess), or run ``python -m lyftlearn_provider.testing.aws --autopilot`` for a standalone
server whose jobs progress by themselves; drive it with ``EmulatorControl(url)``. Everything the
control client does goes over HTTP under ``/_lyftlearn/``, so it works the same across processes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lyftlearn_provider.testing.aws.control import ControlError, EmulatorControl
    from lyftlearn_provider.testing.aws.server import AwsEmulator

__all__ = ["AwsEmulator", "ControlError", "EmulatorControl"]

# Imported on first use: the pytest plugin imports this package in every test run, and the server
# pulls in moto and Flask (about a second), which only tests that use the emulator should pay for.
_EXPORTS = {"AwsEmulator": "server", "ControlError": "control", "EmulatorControl": "control"}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)

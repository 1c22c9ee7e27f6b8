"""The SageMaker job kinds the provider runs, described once: what differs between them is data.

Training jobs and Processing jobs (batch) share one lifecycle — create once under a name derived
from the run, describe, stop, list by last change, one EventBridge state-change event per change — and
differ only in the names of their API operations and response fields. The backend, the hook, the
trigger, the shared watcher, the SQS consumer and the event route read those names from a
:class:`JobKind` instead of hard-coding training. Pure and light: DAG files import it when parsed.
"""

from __future__ import annotations

import dataclasses
import re


def _snake(operation: str) -> str:
    """Return the botocore method of an operation (``DescribeTrainingJob``: ``describe_training_job``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


@dataclasses.dataclass(frozen=True)
class JobKind:
    """One kind of SageMaker job: its API operations, response fields, events, ARNs and console pages.

    :param name: the kind's short name (``training``, ``processing``); serialized in triggers.
    :param noun: how logs and errors call one job.
    :param resource: the API's word for it (``TrainingJob``), from which operations and fields derive.
    :param arn_resource: the resource type in the job's ARN (``training-job``).
    :param detail_type: the EventBridge ``detail-type`` of its state changes.
    :param console_path: the SageMaker console's page of a job, after ``#/`` (``jobs``).
    :param log_group: the CloudWatch log group of its containers.
    """

    name: str
    noun: str
    resource: str
    arn_resource: str
    detail_type: str
    console_path: str
    log_group: str

    # ------------------------------------------------------------------ API operations
    @property
    def create_operation(self) -> str:
        """Return ``CreateTrainingJob`` and the like."""
        return f"Create{self.resource}"

    @property
    def describe_operation(self) -> str:
        """Return ``DescribeTrainingJob`` and the like."""
        return f"Describe{self.resource}"

    @property
    def stop_operation(self) -> str:
        """Return ``StopTrainingJob`` and the like."""
        return f"Stop{self.resource}"

    @property
    def list_operation(self) -> str:
        """Return ``ListTrainingJobs`` and the like."""
        return f"List{self.resource}s"

    @property
    def operations(self) -> frozenset[str]:
        """Return the four operations of the kind's lifecycle."""
        return frozenset(
            {self.create_operation, self.describe_operation, self.stop_operation, self.list_operation}
        )

    def method(self, operation: str) -> str:
        """Return the botocore client method of ``operation`` (``describe_training_job``)."""
        return _snake(operation)

    def iam_action(self, operation: str) -> str:
        """Return the IAM action of ``operation`` (``sagemaker:DescribeTrainingJob``)."""
        return f"sagemaker:{operation}"

    # ------------------------------------------------------------------ response fields
    @property
    def name_field(self) -> str:
        """Return ``TrainingJobName`` and the like."""
        return f"{self.resource}Name"

    @property
    def status_field(self) -> str:
        """Return ``TrainingJobStatus`` and the like."""
        return f"{self.resource}Status"

    @property
    def arn_field(self) -> str:
        """Return ``TrainingJobArn`` and the like."""
        return f"{self.resource}Arn"

    @property
    def summaries_field(self) -> str:
        """Return ``TrainingJobSummaries`` and the like (the list of a listing's page)."""
        return f"{self.resource}Summaries"

    # ------------------------------------------------------------------ where people look
    def arn(self, partition: str, region: str, account: str, job_name: str) -> str:
        """Return the job's ARN."""
        return f"arn:{partition}:sagemaker:{region}:{account}:{self.arn_resource}/{job_name}"

    def arn_pattern(self) -> re.Pattern[str]:
        """Return a pattern of the kind's ARNs: groups region, account, name."""
        return re.compile(rf"arn:aws[a-z-]*:sagemaker:([a-z0-9-]*):([0-9]{{12}}):{self.arn_resource}/(.+)")


TRAINING = JobKind(
    name="training",
    noun="training job",
    resource="TrainingJob",
    arn_resource="training-job",
    detail_type="SageMaker Training Job State Change",
    console_path="jobs",
    log_group="/aws/sagemaker/TrainingJobs",
)
PROCESSING = JobKind(
    name="processing",
    noun="processing job",
    resource="ProcessingJob",
    arn_resource="processing-job",
    detail_type="SageMaker Processing Job State Change",
    console_path="processing-jobs",
    log_group="/aws/sagemaker/ProcessingJobs",
)
#: Every kind, by name.
JOB_KINDS = {kind.name: kind for kind in (TRAINING, PROCESSING)}
#: Every kind, by the ``detail-type`` of its EventBridge events.
BY_DETAIL_TYPE = {kind.detail_type: kind for kind in JOB_KINDS.values()}


def job_kind(name: str | JobKind) -> JobKind:
    """Return the kind named ``name`` (a kind as it is); raise ``ValueError`` naming the choices."""
    if isinstance(name, JobKind):
        return name
    try:
        return JOB_KINDS[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a job kind; use one of {sorted(JOB_KINDS)}") from None

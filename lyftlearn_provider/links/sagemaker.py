"""Extra links from a job task (training, batch) to its SageMaker job, its logs and its image in the console.

A task's links read one XCom entry per job kind (``lyftlearn_training_job`` or
``lyftlearn_processing_job``), pushed once when the task creates or adopts its job: the task's XCom
tab stays short, and each link is empty until its facts are known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from lyftlearn_provider.job_kinds import JobKind

#: The one XCom key every training link reads.
LINKS_XCOM_KEY = "lyftlearn_training_job"
#: The one XCom key every batch (processing) link reads.
PROCESSING_LINKS_XCOM_KEY = "lyftlearn_processing_job"


def _logs(group: str) -> str:
    """Return the console URL template of a SageMaker log group's streams for one job."""
    # The console's fragment needs the log group and filter escaped twice ($25 is an escaped %).
    return (
        BASE_AWS_CONSOLE_LINK + "/cloudwatch/home?region={region_name}#logsV2:log-groups/log-group/"
        f"$252Faws$252Fsagemaker$252F{group}$3FlogStreamNameFilter$3D{{job_name}}$252F"
    )


_IMAGE = (
    BASE_AWS_CONSOLE_LINK + "/ecr/repositories/private/{image_account}/{image_repository}/_/image/"
    "{image_digest}/details?region={image_region}"
)


class TrainingJobLink(BaseAwsLink):
    """Link to the training job's page in the SageMaker console."""

    name = "SageMaker Training Job"
    key = LINKS_XCOM_KEY
    format_str = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#/jobs/{job_name}"


class TrainingJobLogsLink(BaseAwsLink):
    """Link to the training job's CloudWatch log streams (``/aws/sagemaker/TrainingJobs``)."""

    name = "Training Job Logs"
    key = LINKS_XCOM_KEY
    format_str = _logs("TrainingJobs")


class TrainingImageLink(BaseAwsLink):
    """Link to the pinned image the job runs, in the ECR console (empty for an image outside ECR)."""

    name = "Image in ECR"
    key = LINKS_XCOM_KEY
    format_str = _IMAGE


class ProcessingJobLink(BaseAwsLink):
    """Link to the processing (batch) job's page in the SageMaker console."""

    name = "SageMaker Processing Job"
    key = PROCESSING_LINKS_XCOM_KEY
    format_str = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#/processing-jobs/{job_name}"


class ProcessingJobLogsLink(BaseAwsLink):
    """Link to the processing job's CloudWatch log streams (``/aws/sagemaker/ProcessingJobs``)."""

    name = "Processing Job Logs"
    key = PROCESSING_LINKS_XCOM_KEY
    format_str = _logs("ProcessingJobs")


class ProcessingImageLink(TrainingImageLink):
    """Link to the pinned image the batch job runs, in the ECR console (empty for an image outside ECR)."""

    key = PROCESSING_LINKS_XCOM_KEY


def links_of(kind: JobKind) -> tuple[type[BaseAwsLink], ...]:
    """Return the extra links of a job of ``kind``: its console page, its logs, its image."""
    if kind.name == "processing":
        return (ProcessingJobLink, ProcessingJobLogsLink, ProcessingImageLink)
    return (TrainingJobLink, TrainingJobLogsLink, TrainingImageLink)


def image_link_facts(image: str | None) -> dict[str, Any]:
    """Return what the image link needs of a pinned ECR image; nothing for another image."""
    from lyftlearn_provider.images import parse_image_reference

    if not image:
        return {}
    try:
        reference = parse_image_reference(image)
    except Exception:
        return {}
    registry = reference.ecr
    if registry is None or reference.digest is None:
        return {}
    return {
        "image_account": registry.account_id,
        "image_region": registry.region,
        "image_repository": reference.repository,
        "image_digest": reference.digest,
    }


def persist_job_links(
    kind: JobKind,
    context: Context,
    operator: BaseOperator,
    *,
    region_name: str,
    aws_partition: str,
    job_name: str,
    image: str | None,
) -> str:
    """Record, in one XCom entry, what the job's links need; return the job's console URL."""
    page = links_of(kind)[0]
    page.persist(
        context=context,
        operator=operator,
        region_name=region_name,
        aws_partition=aws_partition,
        job_name=job_name,
        **image_link_facts(image),
    )
    return page().format_link(
        region_name=region_name, aws_domain=BaseAwsLink.get_aws_domain(aws_partition), job_name=job_name
    )

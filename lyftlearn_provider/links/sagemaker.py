"""Extra links from a training task to its SageMaker job, its logs and its image in the AWS console.

The three links read one XCom entry (``lyftlearn_training_job``), pushed once when the task creates or
adopts its job: the task's XCom tab stays short, and each link is empty until its facts are known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

#: The one XCom key every training link reads.
LINKS_XCOM_KEY = "lyftlearn_training_job"


class TrainingJobLink(BaseAwsLink):
    """Link to the training job's page in the SageMaker console."""

    name = "SageMaker Training Job"
    key = LINKS_XCOM_KEY
    format_str = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#/jobs/{job_name}"


class TrainingJobLogsLink(BaseAwsLink):
    """Link to the training job's CloudWatch log streams (``/aws/sagemaker/TrainingJobs``)."""

    name = "Training Job Logs"
    key = LINKS_XCOM_KEY
    # The console's fragment needs the log group and filter escaped twice ($25 is an escaped %).
    format_str = (
        BASE_AWS_CONSOLE_LINK + "/cloudwatch/home?region={region_name}#logsV2:log-groups/log-group/"
        "$252Faws$252Fsagemaker$252FTrainingJobs$3FlogStreamNameFilter$3D{job_name}$252F"
    )


class TrainingImageLink(BaseAwsLink):
    """Link to the pinned image the job runs, in the ECR console (empty for an image outside ECR)."""

    name = "Image in ECR"
    key = LINKS_XCOM_KEY
    format_str = (
        BASE_AWS_CONSOLE_LINK + "/ecr/repositories/private/{image_account}/{image_repository}/_/image/"
        "{image_digest}/details?region={image_region}"
    )


def image_link_facts(image: str | None) -> dict[str, Any]:
    """Return what :class:`TrainingImageLink` needs of a pinned ECR image; nothing for another image."""
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


def persist_training_links(
    context: Context,
    operator: BaseOperator,
    *,
    region_name: str,
    aws_partition: str,
    job_name: str,
    image: str | None,
) -> str:
    """Record, in one XCom entry, what the training job's links need; return the job's console URL."""
    TrainingJobLink.persist(
        context=context,
        operator=operator,
        region_name=region_name,
        aws_partition=aws_partition,
        job_name=job_name,
        **image_link_facts(image),
    )
    return TrainingJobLink().format_link(
        region_name=region_name, aws_domain=BaseAwsLink.get_aws_domain(aws_partition), job_name=job_name
    )

"""Extra links from a job task (training, batch) to its SageMaker job and its logs in the AWS console."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

if TYPE_CHECKING:
    from lyftlearn_provider.job_kinds import JobKind


class TrainingJobLink(BaseAwsLink):
    """Link to the training job's page in the SageMaker console."""

    name = "SageMaker Training Job"
    key = "lyftlearn_training_job"
    format_str = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#/jobs/{job_name}"


class TrainingJobLogsLink(BaseAwsLink):
    """Link to the training job's CloudWatch log streams (``/aws/sagemaker/TrainingJobs``)."""

    name = "Training Job Logs"
    key = "lyftlearn_training_job_logs"
    # The console's fragment needs the log group and filter escaped twice ($25 is an escaped %).
    format_str = (
        BASE_AWS_CONSOLE_LINK + "/cloudwatch/home?region={region_name}#logsV2:log-groups/log-group/"
        "$252Faws$252Fsagemaker$252FTrainingJobs$3FlogStreamNameFilter$3D{job_name}$252F"
    )


class ProcessingJobLink(BaseAwsLink):
    """Link to the processing (batch) job's page in the SageMaker console."""

    name = "SageMaker Processing Job"
    key = "lyftlearn_processing_job"
    format_str = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#/processing-jobs/{job_name}"


class ProcessingJobLogsLink(BaseAwsLink):
    """Link to the processing job's CloudWatch log streams (``/aws/sagemaker/ProcessingJobs``)."""

    name = "Processing Job Logs"
    key = "lyftlearn_processing_job_logs"
    format_str = (
        BASE_AWS_CONSOLE_LINK + "/cloudwatch/home?region={region_name}#logsV2:log-groups/log-group/"
        "$252Faws$252Fsagemaker$252FProcessingJobs$3FlogStreamNameFilter$3D{job_name}$252F"
    )


def links_of(kind: JobKind) -> tuple[type[BaseAwsLink], ...]:
    """Return the extra links of a job of ``kind``: its console page and its logs."""
    if kind.name == "processing":
        return (ProcessingJobLink, ProcessingJobLogsLink)
    return (TrainingJobLink, TrainingJobLogsLink)

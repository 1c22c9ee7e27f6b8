"""Extra links from a job task (training, batch) to its SageMaker job, its logs and its image in the console.

Each job kind (:mod:`lyftlearn_provider.job_kinds`) gets three links, made from its description by
:func:`links_of`: its console page, its CloudWatch log streams and its pinned image in ECR
(``TrainingJobLink``, ``TrainingJobLogsLink``, ``TrainingImageLink``; ``ProcessingJobLink`` …). A kind
added there gets its links, importable here by class path, without a class written for it. A task's
links read one XCom entry per job kind (``lyftlearn_training_job`` or ``lyftlearn_processing_job``),
pushed once when the task creates or adopts its job: the task's XCom tab stays short, and each link is
empty until its facts are known.

Airflow serializes a link as its name and ``xcom_key`` (``_link_<class name>``), so the classes' names
and link names must not change: DAGs serialized before would show links that find nothing.
"""

from __future__ import annotations

import functools
import re
import types
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

from lyftlearn_provider.job_kinds import JOB_KINDS, PROCESSING, TRAINING, JobKind

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context


def links_xcom_key(kind: JobKind) -> str:
    """Return the one XCom key every link of a job of ``kind`` reads (``lyftlearn_training_job``)."""
    return f"lyftlearn_{kind.name}_job"


#: The one XCom key every training link reads.
LINKS_XCOM_KEY = links_xcom_key(TRAINING)
#: The one XCom key every batch (processing) link reads.
PROCESSING_LINKS_XCOM_KEY = links_xcom_key(PROCESSING)


class JobLink(BaseAwsLink):
    """Link to a job's page in the SageMaker console; :func:`links_of` makes one per job kind."""

    kind: ClassVar[JobKind]


class JobLogsLink(BaseAwsLink):
    """Link to a job's CloudWatch log streams; :func:`links_of` makes one per job kind."""

    kind: ClassVar[JobKind]


class JobImageLink(BaseAwsLink):
    """Link to the pinned image a job runs, in the ECR console (empty for an image outside ECR)."""

    kind: ClassVar[JobKind]
    name = "Image in ECR"
    format_str = (
        BASE_AWS_CONSOLE_LINK + "/ecr/repositories/private/{image_account}/{image_repository}/_/image/"
        "{image_digest}/details?region={image_region}"
    )


class KindLinks(NamedTuple):
    """A job kind's links: its console page, its logs, its image."""

    job: type[JobLink]
    logs: type[JobLogsLink]
    image: type[JobImageLink]


def _logs(log_group: str) -> str:
    """Return the console URL template of a log group's streams for one job."""
    # The console's fragment needs the log group and filter escaped twice ($25 is an escaped %).
    group = log_group.replace("/", "$252F")
    return (
        BASE_AWS_CONSOLE_LINK + "/cloudwatch/home?region={region_name}#logsV2:log-groups/log-group/"
        f"{group}$3FlogStreamNameFilter$3D{{job_name}}$252F"
    )


def _link_class(base: type[BaseAwsLink], class_name: str, doc: str, /, **attributes: Any) -> Any:
    """Return a subclass of ``base`` named ``class_name``, importable from this module by that name."""
    namespace = {"__module__": __name__, "__qualname__": class_name, "__doc__": doc, **attributes}
    return types.new_class(class_name, (base,), exec_body=lambda body: body.update(namespace))


@functools.cache
def links_of(kind: JobKind) -> KindLinks:
    """Return the extra links of a job of ``kind``: its console page, its logs, its image (made once)."""
    prefix = kind.resource.removesuffix("Job")  # Training: TrainingJobLink, TrainingJobLogsLink …
    title = re.sub(r"(?<!^)(?=[A-Z])", " ", kind.resource)  # Training Job
    common = {"kind": kind, "key": links_xcom_key(kind)}
    return KindLinks(
        job=_link_class(
            JobLink,
            f"{prefix}JobLink",
            f"Link to the {kind.noun}'s page in the SageMaker console.",
            name=f"SageMaker {title}",
            format_str=(
                BASE_AWS_CONSOLE_LINK
                + f"/sagemaker/home?region={{region_name}}#/{kind.console_path}/{{job_name}}"
            ),
            **common,
        ),
        logs=_link_class(
            JobLogsLink,
            f"{prefix}JobLogsLink",
            f"Link to the {kind.noun}'s CloudWatch log streams (``{kind.log_group}``).",
            name=f"{title} Logs",
            format_str=_logs(kind.log_group),
            **common,
        ),
        image=_link_class(
            JobImageLink,
            f"{prefix}ImageLink",
            f"Link to the pinned image the {kind.noun} runs, in the ECR console (empty outside ECR).",
            **common,
        ),
    )


# Named here for readers and type checkers; every kind's links are importable by class path (below).
TrainingJobLink, TrainingJobLogsLink, TrainingImageLink = links_of(TRAINING)
ProcessingJobLink, ProcessingJobLogsLink, ProcessingImageLink = links_of(PROCESSING)


if not TYPE_CHECKING:  # hidden from type checkers, which would otherwise accept any name imported here

    def __getattr__(name: str) -> type[BaseAwsLink]:
        """Return the link class ``name`` of any job kind (Airflow and pickle import links by class path)."""
        for kind in JOB_KINDS.values():
            for link in links_of(kind):
                if link.__name__ == name:
                    return link
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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

"""SageMaker jobs (training, processing), found by name, created at most once, stopped on request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from botocore.exceptions import ClientError

from lyftlearn_provider.exceptions import ServiceError
from lyftlearn_provider.hooks.base import PatientHookMixin
from lyftlearn_provider.job_kinds import PROCESSING, TRAINING, JobKind
from lyftlearn_provider.naming import MAX_ATTEMPTS, attempt_job_name
from lyftlearn_provider.retries import (
    error_code,
    is_not_found,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient

T = TypeVar("T")


class SageMakerJobHook(PatientHookMixin, SageMakerHook):
    """
    Interact with SageMaker jobs of one kind through the amazon provider's ``SageMakerHook``.

    Adds what an idempotent training task needs: look a job up by name without an exception for
    "not found", find the latest attempt of a run, create a job exactly once (a ``ResourceInUse``
    answer to a retried create means our earlier request got through), and stop a job whatever
    state it is in. Throttling, 5xx answers and lost connections are retried by botocore (standard
    mode, unless the connection configures its own retries) and then, for synchronous calls, with
    this hook's own back-off for up to ``patience`` seconds: a storm delays a task, it does not fail it.

    :param patience: seconds a synchronous call keeps retrying transient failures.
    :param retry_delay: base delay of that back-off (doubled per failure, jittered).
    """

    #: The kind of job this hook creates, describes and stops.
    kind: JobKind = TRAINING

    def _call(self, operation: str, **request: Any) -> Any:
        return getattr(self.conn, self.kind.method(operation))(**request)

    def describe_job(self, name: str) -> dict[str, Any] | None:
        """Return the job's description, or None when no job has this name."""
        kind = self.kind
        try:
            return dict(
                self.patiently(lambda: self._call(kind.describe_operation, **{kind.name_field: name}))
            )
        except ClientError as error:
            if is_not_found(error):
                return None
            raise

    def find_latest_attempt(self, base_name: str) -> tuple[int, dict[str, Any] | None]:
        """
        Return the number and description of the run's latest attempt, or ``(0, None)`` when none exists.

        Attempts are named ``base``, ``base-a2``, ``base-a3`` ... and created in order, so the first
        missing name ends the search.
        """
        latest: tuple[int, dict[str, Any] | None] = (0, None)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            description = self.describe_job(attempt_job_name(base_name, attempt))
            if description is None:
                break
            latest = (attempt, description)
        return latest

    def create_job(self, request: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """
        Create the job unless it exists; return its description and whether we created it.

        A name already in use is not an error here: names are derived from the run, so the job with
        this name is the one an earlier try of the same task (or our own retried request) created.
        """
        name = request[self.kind.name_field]
        try:
            # Safe to repeat: a request that got through answers ResourceInUse the second time.
            self.patiently(lambda: self._call(self.kind.create_operation, **request))
            created = True
        except ClientError as error:
            if error_code(error) != "ResourceInUse":
                raise
            created = False
        description = self.describe_job(name)
        if description is None:
            raise ServiceError(f"SageMaker accepted {self.kind.noun} {name} but does not describe it")
        return description, created

    def list_tags(self, arn: str) -> list[dict[str, str]]:
        """Return every tag of a SageMaker resource (all pages)."""
        tags: list[dict[str, str]] = []
        request: dict[str, Any] = {"ResourceArn": arn, "MaxResults": 100}
        while True:
            page = self.patiently(lambda: self.conn.list_tags(**request))
            tags.extend(page.get("Tags", []))
            if not page.get("NextToken"):
                return tags
            request["NextToken"] = page["NextToken"]

    def find_warm_pool_donor(self, description: Mapping[str, Any], max_pages: int = 10) -> str | None:
        """Return the earlier job whose warm pool this job reused, or None.

        SageMaker records reuse on the donor (``WarmPoolStatus.ReusedByJob``), not on the job that
        benefited, so the donor is looked for among jobs with a reused pool created before this one,
        newest first, a page of 100 at a time and at most ``max_pages`` pages (busy accounts have many).

        :param description: the ``DescribeTrainingJob`` of the job that may have started on a pool.
        """
        name = description["TrainingJobName"]
        request: dict[str, Any] = {
            "WarmPoolStatusEquals": "Reused",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 100,
        }
        if description.get("CreationTime") is not None:
            request["CreationTimeBefore"] = description["CreationTime"]
        for _ in range(max_pages):
            response = self.patiently(lambda: self.conn.list_training_jobs(**request))
            for summary in response.get("TrainingJobSummaries", []):
                if (summary.get("WarmPoolStatus") or {}).get("ReusedByJob") == name:
                    return str(summary["TrainingJobName"])
            if not response.get("NextToken"):
                return None
            request["NextToken"] = response["NextToken"]
        return None

    def stop_job(self, name: str) -> bool:
        """Ask SageMaker to stop the job; return False when it had already ended."""
        try:
            self.patiently(lambda: self._call(self.kind.stop_operation, **{self.kind.name_field: name}))
        except ClientError as error:
            if error_code(error) == "ValidationException":
                return False
            raise
        return True

    def upload_json(self, uri: str, document: Mapping[str, Any]) -> None:
        """Write a JSON document to an ``s3://`` URI, replacing what is there."""
        bucket, key = S3Hook.parse_s3_url(uri)
        body = json.dumps(document, sort_keys=True)
        self.patiently(lambda: self.s3_hook.load_string(body, key=key, bucket_name=bucket, replace=True))

    async def describe_job_async(self, client: BaseClient, name: str) -> dict[str, Any]:
        """Return the job's description through an aiobotocore client from ``get_async_conn``."""
        method = getattr(client, self.kind.method(self.kind.describe_operation))
        return dict(await method(**{self.kind.name_field: name}))

    async def stop_job_async(self, name: str) -> bool:
        """Ask SageMaker to stop the job without blocking the event loop; False if it had ended."""
        async with await self.get_async_conn() as client:
            try:
                await getattr(client, self.kind.method(self.kind.stop_operation))(
                    **{self.kind.name_field: name}
                )
            except ClientError as error:
                if error_code(error) == "ValidationException":
                    return False
                raise
        return True


class SageMakerTrainingHook(SageMakerJobHook):
    """Interact with SageMaker training jobs (see :class:`SageMakerJobHook`)."""

    kind = TRAINING


class SageMakerProcessingHook(SageMakerJobHook):
    """Interact with SageMaker processing jobs, the provider's batch jobs (see :class:`SageMakerJobHook`)."""

    kind = PROCESSING


def job_hook(kind: JobKind, **kwargs: Any) -> SageMakerJobHook:
    """Return the hook of ``kind``'s jobs, built with ``kwargs``."""
    return SageMakerProcessingHook(**kwargs) if kind is PROCESSING else SageMakerTrainingHook(**kwargs)

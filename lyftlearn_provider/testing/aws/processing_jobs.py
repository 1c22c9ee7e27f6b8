"""SageMaker Processing jobs (the provider's batch jobs) as the emulator keeps them.

The state machine is the training jobs' (:class:`~.training_jobs.TrainingJobStore`): InProgress through
the same start-up and run phases, Completed, Failed, Stopping → Stopped, ``ResourceInUse`` for a
name taken, ``ListProcessingJobs`` with NameContains, StatusEquals, the time filters, sorting and
``NextToken`` paging, and one EventBridge "SageMaker Processing Job State Change" event per change.
Only the responses differ, shaped as ``DescribeProcessingJob`` and ``ProcessingJobSummary`` are:

* there is no ``SecondaryStatus`` (the phases are kept, and drive ``ProcessingStartTime``, but are not
  shown), no model artifact, no metrics, no billable time and no warm pool;
* ``ProcessingStartTime`` is when the job first leaves the start-up phases, ``ProcessingEndTime`` when
  it ends; a failed job's ``ExitMessage`` is its failure reason, as a program's last words would be.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from lyftlearn_provider.job_kinds import PROCESSING
from lyftlearn_provider.testing.aws.training_jobs import TrainingJobStore, _echoed_members, _Job
from lyftlearn_provider.testing.aws.validation import sagemaker_model


@functools.lru_cache(maxsize=1)
def _summary_members() -> tuple[str, ...]:
    return tuple(sagemaker_model().shape_for("ProcessingJobSummary").members)


class ProcessingJobStore(TrainingJobStore):
    """Processing jobs of one emulated account, all regions, behind one lock (see the module docs)."""

    kind = PROCESSING

    def _summary(self, job: _Job, now: float) -> dict[str, Any]:
        # A ProcessingJobSummary is a part of DescribeProcessingJob: the members botocore's model names.
        described = self._describe(job, now)
        return {member: described[member] for member in _summary_members() if member in described}

    def _describe(self, job: _Job, now: float) -> dict[str, Any]:
        described: dict[str, Any] = copy.deepcopy(
            {key: value for key, value in job.request.items() if key in _echoed_members(PROCESSING)}
        )
        described.update(self._identity(job))
        if job.failure_reason is not None:
            described["FailureReason"] = job.failure_reason
            described["ExitMessage"] = job.failure_reason
        if job.training_start is not None:
            described["ProcessingStartTime"] = job.training_start
        if job.training_end is not None:
            described["ProcessingEndTime"] = job.training_end
        return described

"""The pure rollout rules: the verdict table, the revision to roll back to, the failure message."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from lyftlearn_provider.rollouts import (
    MAX_EVENT_MESSAGE,
    RolloutEvent,
    RolloutEventStatus,
    RolloutState,
    RolloutVerdict,
    describe_failure,
    event_lines,
    label_selector,
    previous_replica_set,
    rollback_annotations,
    rollback_template,
    rolled_back,
    rollout_verdict,
)

UID = "d-uid"


def deployment(
    *,
    generation: int | None = 4,
    replicas: int | None = 3,
    status: dict[str, Any] | None = None,
    paused: bool = False,
    image: str = "fraud:v3",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "fraud"}},
        "template": {
            "metadata": {"labels": {"app": "fraud"}},
            "spec": {"containers": [{"name": "server", "image": image}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if paused:
        spec["paused"] = True
    metadata: dict[str, Any] = {
        "name": "fraud",
        "namespace": "serving",
        "uid": UID,
        "resourceVersion": "41",
        "annotations": annotations if annotations is not None else {"deployment.kubernetes.io/revision": "3"},
    }
    if generation is not None:
        metadata["generation"] = generation
    result: dict[str, Any] = {"metadata": metadata, "spec": spec}
    if status is not None:
        result["status"] = status
    return result


def status(
    observed: int = 4,
    updated: int = 3,
    ready: int = 3,
    available: int = 3,
    replicas: int | None = None,
    progressing: tuple[str, str] | None = ("True", "NewReplicaSetAvailable"),
) -> dict[str, Any]:
    # Zero counts are omitted, as the API omits them.
    counts = {
        "observedGeneration": observed,
        "replicas": updated if replicas is None else replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
    }
    result: dict[str, Any] = {k: v for k, v in counts.items() if v}
    if progressing is not None:
        result["conditions"] = [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": progressing[0], "reason": progressing[1]},
        ]
    return result


# ------------------------------------------------------------------------------------------- verdict
@pytest.mark.parametrize(
    ("manifest", "state", "reason", "summary"),
    [
        pytest.param(
            deployment(status=status()),
            RolloutState.ROLLED_OUT,
            None,
            "generation 4 observed 4; updated 3/3, ready 3/3, available 3/3; Progressing=True "
            "NewReplicaSetAvailable",
            id="rolled-out",
        ),
        pytest.param(
            # The counts are those of the previous generation: they say nothing about the new spec.
            deployment(status=status(observed=3)),
            RolloutState.PROGRESSING,
            None,
            "generation 4 observed 3; updated 3/3, ready 3/3, available 3/3; Progressing=True "
            "NewReplicaSetAvailable",
            id="generation-not-yet-observed",
        ),
        pytest.param(
            # A deadline missed by the previous spec does not fail the new one before it is observed.
            deployment(
                status=status(observed=3, updated=1, progressing=("False", "ProgressDeadlineExceeded"))
            ),
            RolloutState.PROGRESSING,
            None,
            None,
            id="old-failure-not-yet-observed",
        ),
        pytest.param(
            deployment(status=status(updated=1, ready=1, available=1, replicas=3)),
            RolloutState.PROGRESSING,
            None,
            "generation 4 observed 4; updated 1/3, ready 1/3, available 1/3, 2 old pending termination; "
            "Progressing=True NewReplicaSetAvailable",
            id="updated-short",
        ),
        pytest.param(
            deployment(status=status(updated=3, ready=2, available=2)),
            RolloutState.PROGRESSING,
            None,
            None,
            id="ready-short",
        ),
        pytest.param(
            deployment(status=status(updated=3, ready=3, available=2)),
            RolloutState.PROGRESSING,
            None,
            None,
            id="available-short",
        ),
        pytest.param(
            # Surge: all three new pods are available but an old one still runs.
            deployment(status=status(replicas=4)),
            RolloutState.PROGRESSING,
            None,
            None,
            id="old-replica-left",
        ),
        pytest.param(
            deployment(replicas=0, status=status(updated=0, ready=0, available=0)),
            RolloutState.ROLLED_OUT,
            None,
            "generation 4 observed 4; updated 0/0, ready 0/0, available 0/0; Progressing=True "
            "NewReplicaSetAvailable",
            id="zero-replicas",
        ),
        pytest.param(
            deployment(replicas=0, status=status(observed=3, updated=0, ready=0, available=0)),
            RolloutState.PROGRESSING,
            None,
            None,
            id="zero-replicas-not-yet-observed",
        ),
        pytest.param(
            deployment(
                replicas=None, generation=None, status=status(observed=1, updated=1, ready=1, available=1)
            ),
            RolloutState.ROLLED_OUT,
            None,
            None,
            id="defaults-one-replica-generation-one",
        ),
        pytest.param(
            deployment(
                status=status(
                    updated=1,
                    ready=2,
                    available=2,
                    replicas=3,
                    progressing=("False", "ProgressDeadlineExceeded"),
                )
            ),
            RolloutState.FAILED,
            "ProgressDeadlineExceeded",
            "generation 4 observed 4; updated 1/3, ready 2/3, available 2/3, 2 old pending termination; "
            "Progressing=False ProgressDeadlineExceeded",
            id="progress-deadline-exceeded",
        ),
        pytest.param(
            deployment(
                status=status(updated=1, ready=1, available=1, progressing=("False", "SomethingElse"))
            ),
            RolloutState.FAILED,
            "SomethingElse",
            None,
            id="progressing-false-other-reason",
        ),
        pytest.param(
            # Pods that came up after the deadline serve all the same.
            deployment(status=status(progressing=("False", "ProgressDeadlineExceeded"))),
            RolloutState.ROLLED_OUT,
            None,
            None,
            id="complete-after-the-deadline",
        ),
        pytest.param(
            deployment(
                paused=True,
                status=status(
                    updated=0, ready=3, available=3, replicas=3, progressing=("Unknown", "DeploymentPaused")
                ),
            ),
            RolloutState.PROGRESSING,
            "DeploymentPaused",
            "generation 4 observed 4; updated 0/3, ready 3/3, available 3/3, 3 old pending termination; "
            "Progressing=Unknown DeploymentPaused; paused",
            id="paused",
        ),
        pytest.param(
            deployment(paused=True, status=status()),
            RolloutState.ROLLED_OUT,
            None,
            None,
            id="paused-but-already-rolled-out",
        ),
        pytest.param(
            deployment(status=None),
            RolloutState.PROGRESSING,
            None,
            "generation 4, no status yet; updated 0/3, ready 0/3, available 0/3",
            id="missing-status",
        ),
        pytest.param(
            deployment(
                status={
                    **status(updated=0, ready=0, available=0, progressing=("True", "NewReplicaSetCreated")),
                    "conditions": [
                        {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"},
                        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"},
                    ],
                }
            ),
            RolloutState.PROGRESSING,
            "FailedCreate",
            "generation 4 observed 4; updated 0/3, ready 0/3, available 0/3; Progressing=True "
            "ReplicaSetUpdated; ReplicaFailure FailedCreate",
            id="replica-failure",
        ),
    ],
)
def test_rollout_verdict(
    manifest: dict[str, Any], state: RolloutState, reason: str | None, summary: str | None
) -> None:
    verdict = rollout_verdict(manifest)
    assert (verdict.state, verdict.reason) == (state, reason)
    if summary is not None:
        assert verdict.summary == summary


def test_verdict_waits_for_the_generation_our_write_produced() -> None:
    # The Deployment as read just before the controller bumped the generation for our patch.
    manifest = deployment(generation=4, status=status(observed=4))
    assert rollout_verdict(manifest).state is RolloutState.ROLLED_OUT
    waiting = rollout_verdict(manifest, generation=5)
    assert waiting.state is RolloutState.PROGRESSING
    assert waiting.summary.startswith("generation 5 observed 4;")
    assert rollout_verdict(manifest, generation=3).state is RolloutState.ROLLED_OUT


def test_verdict_and_event_round_trip_through_json() -> None:
    verdict = rollout_verdict(
        deployment(
            status=status(updated=1, ready=1, available=1, progressing=("False", "ProgressDeadlineExceeded"))
        )
    )
    assert (verdict.desired, verdict.updated, verdict.ready, verdict.available) == (3, 1, 1, 1)
    event = RolloutEvent(
        RolloutEventStatus.FAILED, "serving", "fraud", verdict.summary, verdict.reason, "m", verdict
    )
    payload = json.loads(json.dumps(event.to_payload()))
    assert set(payload) == {"status", "namespace", "name", "summary", "reason", "message", "verdict"}
    assert RolloutEvent.from_payload(payload) == event
    assert RolloutVerdict.from_payload(payload["verdict"]) == verdict
    for bad in (None, {"status": "exploded", "namespace": "n", "name": "x"}, {"status": "failed"}):
        with pytest.raises(ValueError, match="not a rollout event"):
            RolloutEvent.from_payload(bad)


# ------------------------------------------------------------------------------------------ rollback
def replica_set(
    template_image: str,
    revision: int | None,
    *,
    owner: str = UID,
    history: str | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    rs_annotations = dict(annotations or {})
    if revision is not None:
        rs_annotations["deployment.kubernetes.io/revision"] = str(revision)
    if history:
        rs_annotations["deployment.kubernetes.io/revision-history"] = history
    template_hash = f"h{abs(hash(template_image)) % 10_000}"
    return {
        "metadata": {
            "name": f"fraud-{template_hash}",
            "annotations": rs_annotations,
            "ownerReferences": [{"kind": "Deployment", "name": "fraud", "uid": owner, "controller": True}],
        },
        "spec": {
            "replicas": 0,
            "template": {
                "metadata": {"labels": {"app": "fraud", "pod-template-hash": template_hash}},
                "spec": {"containers": [{"name": "server", "image": template_image}]},
            },
        },
    }


def image_of(template: Any) -> str:
    return template["spec"]["containers"][0]["image"]


def test_three_revisions_roll_back_to_the_second() -> None:
    sets = [replica_set("fraud:v1", 1), replica_set("fraud:v3", 3), replica_set("fraud:v2", 2)]
    template = rollback_template(deployment(image="fraud:v3"), sets)
    assert template is not None and image_of(template) == "fraud:v2"
    # The controller's hash label is not part of what goes back into the Deployment.
    assert template["metadata"]["labels"] == {"app": "fraud"}
    assert "pod-template-hash" in sets[2]["spec"]["template"]["metadata"]["labels"], "inputs are not mutated"


def test_one_revision_has_nothing_to_roll_back_to() -> None:
    assert rollback_template(deployment(image="fraud:v1"), [replica_set("fraud:v1", 1)]) is None
    assert rollback_template(deployment(image="fraud:v1"), []) is None


def test_rollback_after_a_rollback_uses_the_reused_revision() -> None:
    # v1 (rev 1), v2 (rev 2), v3 (rev 3), then undo brought v1 back: its ReplicaSet moved to rev 4.
    sets = [replica_set("fraud:v1", 4, history="1"), replica_set("fraud:v2", 2), replica_set("fraud:v3", 3)]
    template = rollback_template(deployment(image="fraud:v1"), sets)
    assert template is not None and image_of(template) == "fraud:v3"


def test_rollback_before_the_controller_made_the_new_replicaset() -> None:
    # Just patched to v3: its ReplicaSet does not exist yet, so the previous revision is the newest one.
    sets = [replica_set("fraud:v1", 1), replica_set("fraud:v2", 2)]
    template = rollback_template(deployment(image="fraud:v3"), sets)
    assert template is not None and image_of(template) == "fraud:v2"


def test_rollback_ignores_replicasets_of_other_owners_and_without_revision() -> None:
    sets = [
        replica_set("fraud:v3", 3),
        replica_set("fraud:v9", 2, owner="someone-else"),
        replica_set("fraud:v8", None),
        replica_set("fraud:v1", 1),
    ]
    template = rollback_template(deployment(image="fraud:v3"), sets)
    assert template is not None and image_of(template) == "fraud:v1"


def test_template_comparison_ignores_empty_fields() -> None:
    current = replica_set("fraud:v3", 3)
    current["spec"]["template"]["metadata"]["annotations"] = {}
    current["spec"]["template"]["spec"]["volumes"] = []
    previous = previous_replica_set(deployment(image="fraud:v3"), [current, replica_set("fraud:v2", 2)])
    assert previous is not None and image_of(previous["spec"]["template"]) == "fraud:v2"


def test_rolled_back_restores_the_revision_annotations_as_kubectl_does() -> None:
    manifest = deployment(
        image="fraud:v3",
        status=status(),
        annotations={
            "deployment.kubernetes.io/revision": "3",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            "lyftlearn.io/model": "s3://models/v3",
            "added-after-v2": "x",
        },
    )
    previous = replica_set("fraud:v2", 2, annotations={"lyftlearn.io/model": "s3://models/v2"})
    assert rollback_annotations(manifest, previous) == {
        "deployment.kubernetes.io/revision": "3",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "lyftlearn.io/model": "s3://models/v2",
    }
    body = rolled_back(manifest, [replica_set("fraud:v3", 3), previous])
    assert body is not None
    assert image_of(body["spec"]["template"]) == "fraud:v2"
    assert body["metadata"]["resourceVersion"] == "41", "the write is a compare-and-swap"
    assert "status" not in body
    assert image_of(manifest["spec"]["template"]) == "fraud:v3", "the input is not mutated"
    assert rolled_back(manifest, [replica_set("fraud:v3", 3)]) is None


# ------------------------------------------------------------------------------- selectors, events
@pytest.mark.parametrize(
    ("selector", "text"),
    [
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
        (
            {
                "matchLabels": {"app": "x"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["web", "api"]},
                    {"key": "env", "operator": "NotIn", "values": ["dev"]},
                    {"key": "owner", "operator": "Exists"},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ],
            },
            "app=x,tier in (web,api),env notin (dev),owner,!legacy",
        ),
        (None, ""),
    ],
)
def test_label_selector(selector: dict[str, Any] | None, text: str) -> None:
    assert label_selector(selector) == text


def warning(pod: str, reason: str, message: str, at: str, version: int, count: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{pod}.{version}", "resourceVersion": str(version)},
        "involvedObject": {"kind": "Pod", "name": pod, "uid": f"uid-{pod}"},
        "reason": reason,
        "message": message,
        "lastTimestamp": at,
        "count": count,
        "type": "Warning",
    }


def test_event_lines_fold_one_problem_of_many_pods_into_one_line_newest_first() -> None:
    events = [
        warning(
            "web-7d9-aaaaa",
            "BackOff",
            "Back-off restarting failed container server in pod web-7d9-aaaaa_default(uid-web-7d9-aaaaa)",
            "2026-01-01T00:00:05Z",
            10,
            count=3,
        ),
        warning(
            "web-7d9-bbbbb",
            "BackOff",
            "Back-off restarting failed container server in pod web-7d9-bbbbb_default(uid-web-7d9-bbbbb)",
            "2026-01-01T00:00:07Z",
            11,
            count=2,
        ),
        warning("web-7d9-aaaaa", "Unhealthy", "Readiness probe failed", "2026-01-01T00:00:06Z", 12),
        # Same second as the probe failure, written later: newer.
        warning("web-7d9-aaaaa", "Failed", "x" * (MAX_EVENT_MESSAGE + 50), "2026-01-01T00:00:06Z", 13),
    ]
    lines = event_lines(events, limit=5)
    assert lines[0] == (
        "pod web-7d9-bbbbb (and 1 more pod): BackOff: Back-off restarting failed container server in pod "
        "web-7d9-bbbbb_default(uid-web-7d9-bbbbb) (x5)"
    )
    assert lines[1] == f"pod web-7d9-aaaaa: Failed: {'x' * (MAX_EVENT_MESSAGE - 1)}…"
    assert lines[2] == "pod web-7d9-aaaaa: Unhealthy: Readiness probe failed"
    assert event_lines(events, limit=2) == lines[:2]
    assert event_lines([], limit=5) == []


# ------------------------------------------------------------------------------------ failure message
def test_describe_failure_names_the_deployment_what_was_seen_and_the_fix() -> None:
    verdict = rollout_verdict(
        deployment(
            status=status(updated=1, ready=1, available=1, progressing=("False", "ProgressDeadlineExceeded"))
        )
    )
    events = [
        'pod fraud-7d9-x: Failed: Failed to pull image "fraud:v3": not found',
        "pod fraud-7d9-x: Failed: Error: ErrImagePull",
    ]
    message = describe_failure("serving", "fraud", verdict, events, 61.6)
    assert message.startswith(
        "Deployment serving/fraud failed to roll out after 62 s (ready 1/3, ProgressDeadlineExceeded). "
        'Its pods report: pod fraud-7d9-x: Failed: Failed to pull image "fraud:v3": not found; '
        "pod fraud-7d9-x: Failed: Error: ErrImagePull. "
    )
    assert message.endswith(
        "Check that the image exists and that the cluster's nodes may pull it "
        "(registry, tag or digest, pull secret)."
    )


@pytest.mark.parametrize(
    ("events", "fix"),
    [
        (["pod a: BackOff: Back-off restarting failed container server in pod a"], "read its logs"),
        (["pod a: Unhealthy: Readiness probe failed: HTTP probe failed"], "readiness probe"),
        (["pod a: FailedScheduling: 0/3 nodes are available: 3 Insufficient cpu."], "add capacity"),
        (['replicaset fraud-1: FailedCreate: serviceaccount "x" not found'], "cannot create pods"),
        ([], "kubectl -n serving describe deployment fraud"),
    ],
)
def test_describe_failure_picks_the_fix_from_the_events(events: list[str], fix: str) -> None:
    verdict = rollout_verdict(deployment(status=status(updated=3, ready=2, available=2)))
    message = describe_failure("serving", "fraud", verdict, events, 600)
    assert message.startswith(
        "Deployment serving/fraud did not become ready within 600 s (updated 3/3, ready 2/3). "
    )
    assert fix in message
    if not events:
        assert "Its pods report no warnings." in message


def test_describe_failure_of_a_paused_deployment_and_of_a_bare_verdict() -> None:
    paused = rollout_verdict(deployment(paused=True, status=status(updated=0, replicas=3)))
    message = describe_failure("serving", "fraud", paused, [], 30)
    assert "(updated 0/3, ready 3/3, DeploymentPaused)" in message
    assert "kubectl -n serving rollout resume deployment/fraud" in message
    # A verdict rebuilt from the summary alone still says what was seen.
    bare = RolloutVerdict(
        RolloutState.FAILED, "generation 2 observed 2; updated 0/1", "ProgressDeadlineExceeded"
    )
    assert "(generation 2 observed 2; updated 0/1)" in describe_failure("serving", "fraud", bare, [], 5)


def test_rules_import_nothing_but_the_standard_library() -> None:
    code = (
        "import sys; import lyftlearn_provider.rollouts; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'airflow', 'kubernetes', 'kubernetes_asyncio', 'boto3', 'botocore'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

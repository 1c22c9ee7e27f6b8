"""The serving half's rules: which model a task hands on, and whether it may replace what serves.

Pure, standard library only (DAG files import it). The operators read a :class:`Model` from a
training result (or from the asset event a training task emitted), decide with :func:`decide` whether
to deploy it — never backwards (R6), never past a failed gate, never twice — and put it into a
Deployment with :func:`serving_deployment`, which records it as a :class:`ServingRecord` in the pod
template's annotations (they travel with every rollback) and in the Deployment's own.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
import json
import math
from collections.abc import Mapping
from typing import Any

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.images import parse_image_reference
from lyftlearn_provider.status import to_datetime
from lyftlearn_provider.validation import check_s3_uri

#: Annotations of the serving record, on the pod template and the Deployment.
ANNOTATION_PREFIX = "lyftlearn.io/"
_RECORD_KEYS = {
    "model_uri": "model-uri",
    "image": "image",
    "training_job": "training-job",
    "data_interval_start": "data-interval-start",
    "data_interval_end": "data-interval-end",
    "trained_at": "trained-at",
    "metrics": "metrics",
    "deployed_by": "deployed-by",
}
_BETTER = ("higher", "lower")


@dataclasses.dataclass(frozen=True)
class Model:
    """A trained model as the serving half sees it: what to run, where it is, what it was trained on.

    :param image: the pinned image that trained it, ``registry/repository@sha256:...``.
    :param uri: where the model is, ``s3://...``.
    :param training_job: the job (or pod) that trained it.
    :param metrics: its final metrics.
    :param data_interval_start: the start of the data it was trained on (ISO 8601), if known.
    :param data_interval_end: the end of that data (ISO 8601), if known; what "newer" means.
    :param trained_at: when its training ended (ISO 8601), if known; "newer" without a data interval.
    """

    image: str
    uri: str
    training_job: str | None = None
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    data_interval_start: str | None = None
    data_interval_end: str | None = None
    trained_at: str | None = None

    def __post_init__(self) -> None:
        check_pinned(self.image, "image")
        check_s3_uri(self.uri, "model_uri")

    @classmethod
    def from_training_result(cls, value: Any, field: str = "training_result") -> Model:
        """Return the model a training task's result describes (the dict, or its JSON text).

        The same shape arrives as the ``extra`` of the asset event a training task emits.
        """
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = None
        if not isinstance(value, Mapping):
            raise InvalidSpecError(
                field,
                f"is not a training result ({type(value).__name__})",
                "Pass the training task's output, e.g. training_result=train.output, or image= and "
                "model_uri=.",
            )
        for key in ("image", "model_artifact_uri"):
            if not value.get(key):
                raise InvalidSpecError(
                    field,
                    f"has no {key!r} (did the training task finish, and report its model?)",
                    "Pass the result TrainModelOperator returned, or image= and model_uri= explicitly.",
                )
        interval = value.get("data_interval") or {}
        metrics = value.get("final_metrics") or {}
        return cls(
            image=value["image"],
            uri=value["model_artifact_uri"],
            training_job=value.get("job_name"),
            metrics={str(name): float(number) for name, number in metrics.items()},
            data_interval_start=interval.get("start"),
            data_interval_end=interval.get("end"),
            trained_at=value.get("ended_at"),
        )

    def newness(self) -> dt.datetime | None:
        """Return what orders models from older to newer: the end of their data, else when they trained."""
        return to_datetime(self.data_interval_end) or to_datetime(self.trained_at)


def check_pinned(image: object, field: str) -> str:
    """Return ``image`` when it names a digest; serving and validation run only what trained, exactly."""
    reference = parse_image_reference(image, field)
    if reference.digest is None:
        raise InvalidSpecError(
            field,
            f"{image!r} is a tag, which can move between training and serving",
            "Pass the pinned image of the training result (its 'image'): "
            "registry/repository@sha256:<digest>.",
        )
    return str(image)


def asset_extra(result: Mapping[str, Any]) -> dict[str, Any]:
    """Return the ``extra`` of the asset event a training task emits for its model (JSON-safe)."""
    keys = (
        "job_name",
        "backend",
        "image",
        "model_artifact_uri",
        "final_metrics",
        "data_interval",
        "ended_at",
    )
    return {key: result.get(key) for key in keys}


@dataclasses.dataclass(frozen=True)
class ServingRecord:
    """What serves, as the Deployment records it: the model, its image and what it was trained on."""

    model_uri: str
    image: str
    training_job: str | None = None
    data_interval_start: str | None = None
    data_interval_end: str | None = None
    trained_at: str | None = None
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    #: ``<dag_id>/<run_id>/<task_id>`` of the task that deployed it.
    deployed_by: str | None = None

    @classmethod
    def of(cls, model: Model, deployed_by: str) -> ServingRecord:
        """Return the record of ``model`` deployed by the task ``deployed_by``."""
        return cls(
            model_uri=model.uri,
            image=model.image,
            training_job=model.training_job,
            data_interval_start=model.data_interval_start,
            data_interval_end=model.data_interval_end,
            trained_at=model.trained_at,
            metrics=dict(model.metrics),
            deployed_by=deployed_by,
        )

    def to_annotations(self) -> dict[str, str]:
        """Return the record as annotations (values are strings; metrics are JSON)."""
        annotations = {}
        for name, key in _RECORD_KEYS.items():
            value = getattr(self, name)
            if value is None:
                continue
            text = json.dumps(dict(value), sort_keys=True) if name == "metrics" else str(value)
            annotations[ANNOTATION_PREFIX + key] = text
        return annotations

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, Any] | None) -> ServingRecord | None:
        """Return the record in ``annotations``, or None when nothing of ours was deployed there."""
        annotations = annotations or {}
        values: dict[str, Any] = {
            name: annotations.get(ANNOTATION_PREFIX + key) for name, key in _RECORD_KEYS.items()
        }
        if not values["model_uri"] or not values["image"]:
            return None
        try:
            metrics = json.loads(values["metrics"] or "{}")
        except ValueError:
            metrics = {}
        values["metrics"] = {
            str(k): float(v) for k, v in (metrics.items() if isinstance(metrics, dict) else ()) if _number(v)
        }
        return cls(**values)

    def newness(self) -> dt.datetime | None:
        """Return what orders models from older to newer (see :meth:`Model.newness`)."""
        return to_datetime(self.data_interval_end) or to_datetime(self.trained_at)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class ModelGate:
    """The bar a model must clear before it serves.

    :param at_least: metric name to the lowest value accepted, e.g. ``{"validation:auc": 0.85}``.
    :param at_most: metric name to the highest value accepted, e.g. ``{"validation:logloss": 0.4}``.
    :param not_worse_than_serving: metric name to which direction is better (``"higher"`` or ``"lower"``):
        the model must be at least as good as the one serving, by that metric.
    """

    at_least: Mapping[str, float] = dataclasses.field(default_factory=dict)
    at_most: Mapping[str, float] = dataclasses.field(default_factory=dict)
    not_worse_than_serving: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for field in ("at_least", "at_most"):
            for name, value in dict(getattr(self, field)).items():
                if not _number(value):
                    raise InvalidSpecError(
                        f"gate.{field}[{name!r}]", f"{value!r} is not a number", "Use a finite number."
                    )
        for name, direction in dict(self.not_worse_than_serving).items():
            if direction not in _BETTER:
                raise InvalidSpecError(
                    f"gate.not_worse_than_serving[{name!r}]",
                    f"{direction!r} does not say which way is better",
                    "Use 'higher' (e.g. AUC) or 'lower' (e.g. log loss).",
                )

    def failure(self, model: Model, serving: ServingRecord | None) -> str | None:
        """Return why ``model`` does not clear the gate, or None when it does."""
        for name, bound in self.at_least.items():
            value = model.metrics.get(name)
            if value is None:
                return f"metric {name} is missing from the training result; the gate needs it >= {bound}"
            if value < bound:
                return f"metric {name} is {value}, below the gate's {bound}"
        for name, bound in self.at_most.items():
            value = model.metrics.get(name)
            if value is None:
                return f"metric {name} is missing from the training result; the gate needs it <= {bound}"
            if value > bound:
                return f"metric {name} is {value}, above the gate's {bound}"
        for name, direction in self.not_worse_than_serving.items():
            value = model.metrics.get(name)
            current = serving.metrics.get(name) if serving is not None else None
            if current is None:
                continue  # nothing serving to compare with, or it did not record this metric
            if value is None:
                return f"metric {name} is missing from the training result; the serving model has {current}"
            worse = value < current if direction == "higher" else value > current
            if worse:
                return (
                    f"metric {name} is {value}, worse than the serving model's {current} "
                    f"({direction} is better)"
                )
        return None


class Decision(str, enum.Enum):
    """What a deploy task does with its model."""

    DEPLOY = "deploy"
    #: The model already serves (or is rolling out): a no-op that succeeds.
    ALREADY_SERVING = "already_serving"
    #: Not deployed, on purpose: never backwards, or the gate said no. The task is skipped, not failed.
    SKIP = "skip"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A deploy decision and why."""

    decision: Decision
    reason: str


def decide(model: Model, serving: ServingRecord | None, gate: ModelGate | None = None) -> Verdict:
    """Decide whether ``model`` replaces what serves: already there, never backwards, then the gate."""
    if serving is not None and serving.model_uri == model.uri and serving.image == model.image:
        return Verdict(Decision.ALREADY_SERVING, f"{model.uri} ({model.image}) already serves")
    ours, theirs = model.newness(), serving.newness() if serving is not None else None
    if ours is not None and theirs is not None and ours < theirs:
        return Verdict(
            Decision.SKIP,
            f"the serving model ({serving.model_uri if serving else None}) was trained on data up to "
            f"{theirs.isoformat()}, newer than this run's {ours.isoformat()}: serving is never rolled back "
            "to older data (a backfill trains every interval but deploys only the newest)",
        )
    failure = gate.failure(model, serving) if gate is not None else None
    if failure is not None:
        return Verdict(Decision.SKIP, f"the model did not clear the gate: {failure}")
    return Verdict(
        Decision.DEPLOY, f"{model.uri} replaces {serving.model_uri if serving else 'nothing of ours'}"
    )


def serving_container(deployment: Mapping[str, Any], container: str) -> Mapping[str, Any]:
    """Return the named container of a Deployment's pod template; raise naming the ones it has."""
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers"
    ) or []
    for item in containers:
        if item.get("name") == container:
            return item
    meta = deployment.get("metadata") or {}
    names = ", ".join(item.get("name", "?") for item in containers) or "none"
    raise InvalidSpecError(
        "container",
        f"Deployment {meta.get('namespace')}/{meta.get('name')} has no container {container!r} "
        f"(it has: {names})",
        "Name the container that serves the model.",
    )


def serving_deployment(
    deployment: Mapping[str, Any],
    *,
    container: str,
    image: str,
    environment: Mapping[str, str],
    record: ServingRecord,
    command: list[str] | None = None,
    args: list[str] | None = None,
) -> dict[str, Any]:
    """Return the Deployment with ``container`` running ``image`` and the contract's ``environment``.

    The Deployment's own ``resourceVersion`` stays, so writing the result back is a compare-and-swap.
    The container's other variables stay too (the team's own); every ``LYFTLEARN_*`` variable and every
    name the contract sets is replaced. The record goes to the pod template's annotations (they follow a
    rollback to whatever ReplicaSet serves) and to the Deployment's.

    :param command: the container's new command, or None to keep the Deployment's.
    :param args: the container's new arguments, or None to keep the Deployment's.
    """
    updated = copy.deepcopy(dict(deployment))
    serving_container(updated, container)
    template = updated["spec"]["template"]
    for item in template["spec"]["containers"]:
        if item.get("name") != container:
            continue
        kept = [
            entry
            for entry in item.get("env") or []
            if entry.get("name") not in environment
            and not str(entry.get("name", "")).startswith("LYFTLEARN_")
        ]
        item["env"] = kept + [{"name": name, "value": value} for name, value in sorted(environment.items())]
        item["image"] = image
        if command is not None:
            item["command"] = list(command)
        if args is not None:
            item["args"] = list(args)
    annotations = record.to_annotations()
    template.setdefault("metadata", {}).setdefault("annotations", {}).update(annotations)
    updated.setdefault("metadata", {}).setdefault("annotations", {}).update(annotations)
    return updated


def serving_record(deployment: Mapping[str, Any]) -> ServingRecord | None:
    """Return what the Deployment serves now, as its pod template records it (rollbacks included).

    A Deployment changed by a team's own tooling (pod mode) has the record on the Deployment alone.
    """
    template = (deployment.get("spec") or {}).get("template") or {}
    recorded = ServingRecord.from_annotations((template.get("metadata") or {}).get("annotations"))
    if recorded is not None:
        return recorded
    return ServingRecord.from_annotations((deployment.get("metadata") or {}).get("annotations"))

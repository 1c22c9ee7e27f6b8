"""KubernetesPodOperator through real Airflow ``dag.test()``, over HTTP, via ``kubernetes_default``."""

from __future__ import annotations

import faulthandler
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lyftlearn_provider.testing.k8s import PodBehavior
from lyftlearn_provider.testing.k8s.cluster import EmulatedCluster

DAGS = Path(__file__).parent / "dags"
#: Outer bound of one dag.test() run; the tasks' execution_timeout (60 s) should fire well before.
RUN_GUARD_SECONDS = 150


@pytest.fixture(scope="module")
def dags(airflow_db: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_emulator_dags", DAGS / "k8s_emulator_dags.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def guarded_run() -> Iterator[None]:
    # dag.test() has no overall timeout: if a run ever hangs, dump every stack and end the session.
    faulthandler.dump_traceback_later(RUN_GUARD_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def _task_state(run: Any, task_id: str) -> str:
    from airflow.utils.session import create_session

    with create_session() as session:
        return str(run.get_task_instance(task_id, session=session).state)


def _xcom(run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key="return_value"
        )
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row is not None else None


def _paths(k8s: EmulatedCluster) -> list[str]:
    return [f"{method} {path.split('?')[0]}" for method, path in k8s.requests()]


@pytest.mark.usefixtures("guarded_run")
def test_sync_pod_returns_its_xcom_through_the_sidecar(k8s: EmulatedCluster, dags: ModuleType) -> None:
    result = {"auc": 0.93, "passed": True, "checks": ["load", "self-test"]}
    k8s.on_pod(
        PodBehavior(logs=["loading model", "self-test ok"], xcom=result), labels={"task_id": "validate_sync"}
    )

    run = dags.kpo_sync.test()

    assert run.state == "success"
    assert _xcom(run, "validate_sync") == result
    paths = _paths(k8s)
    pod = next(p.split("/")[-1] for p in paths if p.startswith("DELETE /api/v1/namespaces/default/pods/"))
    assert pod.startswith("validate-sync-")
    assert f"GET /api/v1/namespaces/default/pods/{pod}/log" in paths
    assert (
        paths.count(f"GET /api/v1/namespaces/default/pods/{pod}/exec") == 2
    )  # read the XCom, stop the sidecar
    assert k8s.objects("pods") == []
    assert {"Scheduled", "Started"} <= {e["reason"] for e in k8s.events(pod)}


@pytest.mark.usefixtures("guarded_run")
def test_deferrable_pod_returns_its_xcom(k8s: EmulatedCluster, dags: ModuleType) -> None:
    k8s.on_pod(PodBehavior(xcom={"rows": 1024}), labels={"task_id": "validate_deferred"})

    run = dags.kpo_deferrable.test()

    assert run.state == "success"
    assert _xcom(run, "validate_deferred") == {"rows": 1024}
    assert any(p.startswith("DELETE /api/v1/namespaces/default/pods/validate-deferred-") for p in _paths(k8s))
    assert k8s.objects("pods") == []


@pytest.mark.usefixtures("guarded_run")
def test_pod_exiting_non_zero_fails_the_task(k8s: EmulatedCluster, dags: ModuleType) -> None:
    k8s.on_pod(
        PodBehavior(logs=["model file is corrupt"], exit_code=3), labels={"task_id": "validate_failing"}
    )

    run = dags.kpo_failing.test()

    assert run.state == "failed"
    assert _task_state(run, "validate_failing") == "failed"
    assert _xcom(run, "validate_failing") is None
    assert any(p.startswith("DELETE /api/v1/namespaces/default/pods/validate-failing-") for p in _paths(k8s))

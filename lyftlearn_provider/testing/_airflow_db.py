"""Read-only look-ups in Airflow's metadata database for the demo (the same SQLite file Airflow uses)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select


def dag_is_parsed(dag_id: str) -> bool:
    """Return whether the DAG processor has stored the DAG."""
    from airflow.models import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.scalar(select(DagModel.dag_id).where(DagModel.dag_id == dag_id)) is not None


def latest_run(dag_id: str) -> dict[str, Any] | None:
    """Return the DAG's most recently created run as a dict, or None."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.scalars(
            select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)
        ).first()
        if run is None:
            return None
        return {
            "run_id": run.run_id,
            "run_type": str(run.run_type),
            "state": str(run.state),
            "data_interval_start": run.data_interval_start,
            "data_interval_end": run.data_interval_end,
        }


def task_states(dag_id: str, run_id: str) -> dict[str, str]:
    """Return ``task_id -> state`` for one run."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
            )
        ).all()
    return {task_id: str(state) for task_id, state in rows}


def task_instances(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Return every task instance of one run (mapped ones each), in the order they started."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        rows = [
            {
                "task_id": ti.task_id,
                "map_index": ti.map_index,
                "label": ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]",
                "state": str(ti.state) if ti.state else "none",
                "try_number": ti.try_number,
                "start_date": ti.start_date,
                "duration": ti.duration,
            }
            for ti in tis
        ]
    far = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
    return sorted(rows, key=lambda row: (row["start_date"] or far, row["label"]))


def try_number(dag_id: str, run_id: str, task_id: str) -> int:
    """Return the task instance's current try number (0 when it never ran)."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        value = session.scalar(
            select(TaskInstance.try_number).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id
            )
        )
    return int(value or 0)


def xcom_value(dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    """Return a task's XCom value, deserialised, or None."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        ).first()
        return None if row is None else XComModel.deserialize_value(row)


def clear_task(dag_id: str, run_id: str, task_id: str) -> int:
    """Clear one task instance as the UI's "Clear" does (its run goes back to queued); return how many."""
    from airflow.models import TaskInstance
    from airflow.models.taskinstance import clear_task_instances
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = list(
            session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.run_id == run_id,
                    TaskInstance.task_id == task_id,
                )
            )
        )
        clear_task_instances(tis, session)
    return len(tis)


def import_errors() -> dict[str, str]:
    """Return the DAG processor's import errors: file to traceback."""
    from airflow.models.errors import ParseImportError
    from airflow.utils.session import create_session

    with create_session() as session:
        return {
            str(error.filename): str(error.stacktrace) for error in session.scalars(select(ParseImportError))
        }

"""Train and serve as two DAGs, owned by two teams, joined by the model's asset."""

from __future__ import annotations

import dataclasses
import datetime as dt

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable

from lyftlearn_provider import (
    DeployModelOperator,
    GateModelOperator,
    ModelGate,
    ResourceProfile,
    RuntimeSpec,
    TrainModelOperator,
    ValidateModelOperator,
)

# [START howto_model_asset_handoff]
# Named, not an s3:// URI: Airflow normalizes s3:// asset URIs with the amazon provider's S3 hook, which
# would import boto3 on every parse. The event's extra says where the model is.
PRICING_MODEL = Asset(name="pricing_model")
SPEC = RuntimeSpec(
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/pricing-model:7",
    role_arn="arn:aws:iam::123456789012:role/lyftlearn-fraud",
    output_s3_uri="s3://lyftlearn-models/pricing",
    command=("python", "-m", "pricing.train"),
    hyperparameters={"until": "{{ data_interval_end }}"},
    resources=ResourceProfile(instance_type="ml.m5.xlarge"),
)
VALIDATION = dataclasses.replace(SPEC, command=("python", "-m", "pricing.validate"))

with DAG(
    dag_id="lyftlearn_train_pricing_model",
    description="The ML team's DAG: train the pricing model hourly and publish it as an asset event.",
    doc_md="""
### Train and publish the pricing model (the ML team's DAG)

Trains hourly; each successful run emits an event of the asset `pricing_model` whose `extra` carries
the model: its URI, the pinned image that trained it, its metrics, data interval and job name. The
serving team's DAG, `lyftlearn_serve_pricing_model`, is scheduled on that asset: neither DAG knows the
other's tasks, and what serves is exactly what trained.
""",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1},
    tags=["lyftlearn", "example"],
) as training_dag:
    TrainModelOperator(task_id="train", spec=SPEC, model_asset=PRICING_MODEL, deferrable=True)

with DAG(
    dag_id="lyftlearn_serve_pricing_model",
    description="The serving team's DAG: gate, validate and deploy each pricing model that is published.",
    doc_md="""
### Serve the pricing model (the serving team's DAG)

Runs whenever `lyftlearn_train_pricing_model` publishes a model (`schedule=[pricing_model]`), and takes
the model from the asset event that triggered the run (`model_asset=`): the gate (MAE at most 2.5,
never older than what serves), validation in a pod with the image that trained, then the deploy to
`ml-serving/pricing-model` with its rollout verdict and rollback.
""",
    schedule=[PRICING_MODEL],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    max_active_runs=1,
    default_args={"retries": 1},
    tags=["lyftlearn", "example"],
) as serving_dag:
    serving = {"namespace": "ml-serving", "deployment": "pricing-model"}
    gate = ModelGate(at_most={"validation:mae": 2.5})
    (
        GateModelOperator(task_id="gate", gate=gate, model_asset=PRICING_MODEL, **serving)
        >> ValidateModelOperator(
            task_id="validate",
            spec=VALIDATION,
            model_asset=PRICING_MODEL,
            namespace="ml-serving",
            service_account_name="fraud-serving",
            deferrable=True,
        )
        >> DeployModelOperator(
            task_id="deploy",
            spec=SPEC,
            model_asset=PRICING_MODEL,
            container="server",
            gate=gate,
            deferrable=True,
            **serving,
        )
    )
# [END howto_model_asset_handoff]

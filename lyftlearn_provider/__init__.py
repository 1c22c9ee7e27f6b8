"""Apache Airflow provider for hybrid ML platforms: train on Amazon SageMaker, serve on Kubernetes.

The package root stays light: DAG files import it on every parse, so public names are resolved
lazily and nothing here imports boto3, botocore or kubernetes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "RuntimeSpec": "lyftlearn_provider.runtime",
    "ResourceProfile": "lyftlearn_provider.runtime",
    "TrainModelOperator": "lyftlearn_provider.operators.training",
    "RunBatchJobOperator": "lyftlearn_provider.operators.batch",
    "ValidateModelOperator": "lyftlearn_provider.operators.validation",
    "DeployModelOperator": "lyftlearn_provider.operators.deployment",
    "GateModelOperator": "lyftlearn_provider.operators.gate",
    "retraining_pipeline": "lyftlearn_provider.pipelines",
    "ModelGate": "lyftlearn_provider.serving",
    "TrainingJobTrigger": "lyftlearn_provider.triggers.training",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from lyftlearn_provider.operators.batch import RunBatchJobOperator as RunBatchJobOperator
    from lyftlearn_provider.operators.deployment import DeployModelOperator as DeployModelOperator
    from lyftlearn_provider.operators.gate import GateModelOperator as GateModelOperator
    from lyftlearn_provider.operators.training import TrainModelOperator as TrainModelOperator
    from lyftlearn_provider.operators.validation import ValidateModelOperator as ValidateModelOperator
    from lyftlearn_provider.pipelines import retraining_pipeline as retraining_pipeline
    from lyftlearn_provider.runtime import ResourceProfile as ResourceProfile
    from lyftlearn_provider.runtime import RuntimeSpec as RuntimeSpec
    from lyftlearn_provider.serving import ModelGate as ModelGate
    from lyftlearn_provider.triggers.training import TrainingJobTrigger as TrainingJobTrigger


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lyftlearn_provider' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

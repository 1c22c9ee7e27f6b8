"""Provider metadata read by Airflow's provider manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow shows in ``airflow providers list`` and the UI."""
    from lyftlearn_provider import __version__

    return {
        "package-name": "airflow-provider-lyftlearn",
        "name": "LyftLearn",
        "description": "Train on Amazon SageMaker, serve on Kubernetes: one image, two runtimes.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "LyftLearn",
                "external-doc-url": "https://github.com/lyft/airflow-provider-lyftlearn",
                "tags": ["aws", "software"],
            }
        ],
        "operators": [
            {
                "integration-name": "LyftLearn",
                "python-modules": [
                    "lyftlearn_provider.operators.training",
                    "lyftlearn_provider.operators.events",
                ],
            }
        ],
        "hooks": [
            {
                "integration-name": "LyftLearn",
                "python-modules": [
                    "lyftlearn_provider.hooks.sagemaker",
                    "lyftlearn_provider.hooks.ecr",
                    "lyftlearn_provider.hooks.events",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "LyftLearn",
                "python-modules": ["lyftlearn_provider.triggers.training"],
            }
        ],
        "extra-links": [
            "lyftlearn_provider.links.sagemaker.TrainingJobLink",
            "lyftlearn_provider.links.sagemaker.TrainingJobLogsLink",
        ],
    }

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
                    "lyftlearn_provider.operators.batch",
                    "lyftlearn_provider.operators.validation",
                    "lyftlearn_provider.operators.deployment",
                    "lyftlearn_provider.operators.gate",
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
                    "lyftlearn_provider.hooks.kubernetes",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "LyftLearn",
                "python-modules": [
                    "lyftlearn_provider.triggers.training",
                    "lyftlearn_provider.triggers.rollout",
                ],
            }
        ],
        "extra-links": [
            "lyftlearn_provider.links.sagemaker.TrainingJobLink",
            "lyftlearn_provider.links.sagemaker.TrainingJobLogsLink",
            "lyftlearn_provider.links.sagemaker.TrainingImageLink",
            "lyftlearn_provider.links.sagemaker.ProcessingJobLink",
            "lyftlearn_provider.links.sagemaker.ProcessingJobLogsLink",
            "lyftlearn_provider.links.sagemaker.ProcessingImageLink",
            "lyftlearn_provider.links.kubernetes.DeploymentLink",
        ],
        "config": {
            "lyftlearn": {
                "description": "Settings of the LyftLearn provider's training operators and triggers.",
                "options": {
                    "poll_interval": {
                        "description": "Default seconds between two looks at a training job (jittered). "
                        "With tracking='shared' the longest the shared watcher goes between two "
                        "looks; with tracking='events' the reconciliation interval.\n",
                        "type": "float",
                        "version_added": "0.1.0",
                        "example": "30",
                        "default": "30",
                    },
                    "api_calls_per_second": {
                        "description": "SageMaker calls per second that every training trigger of one "
                        "triggerer process may make together, per AWS connection and region (a token "
                        "bucket that halves its rate while SageMaker throttles). SageMaker's control-plane "
                        "limits are per account and not adjustable: keep the sum over triggerer processes "
                        "below them.\n",
                        "type": "float",
                        "version_added": "0.1.0",
                        "example": "10",
                        "default": "10",
                    },
                    "deployment_url_template": {
                        "description": "URL of a serving Deployment in your cluster console, for the "
                        "deploy task's extra link: {namespace} and {name} are filled in. Empty: no link.\n",
                        "type": "string",
                        "version_added": "0.1.0",
                        "example": "https://k8s.example.com/#/deployment/{namespace}/{name}",
                        "default": "",
                    },
                    "api_burst": {
                        "description": "Calls the per-process budget allows at once after a quiet spell.\n",
                        "type": "float",
                        "version_added": "0.1.0",
                        "example": "20",
                        "default": "20",
                    },
                },
            }
        },
    }

"""An extra link from a deploy task to its serving Deployment, in whatever cluster console a company uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.models import BaseOperator
    from airflow.providers.common.compat.sdk import TaskInstanceKey
    from airflow.sdk import Context


def deployment_url(template: str, namespace: str, name: str) -> str:
    """Return the console URL of a Deployment: ``template`` with ``{namespace}`` and ``{name}`` filled in."""
    try:
        return template.format(namespace=namespace, name=name)
    except (KeyError, IndexError, ValueError):
        return ""


class DeploymentLink(BaseOperatorLink):
    """Link to the Deployment in the cluster console ``[lyftlearn] deployment_url_template`` names."""

    name: ClassVar[str] = "Serving Deployment"
    key: ClassVar[str] = "lyftlearn_deployment"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """Return the link, or an empty string when no console is configured or nothing was deployed."""
        from airflow.configuration import conf

        template = conf.get("lyftlearn", "deployment_url_template", fallback="")
        where: Any = XCom.get_value(key=self.key, ti_key=ti_key)
        if not template or not isinstance(where, dict):
            return ""
        return deployment_url(template, str(where.get("namespace")), str(where.get("name")))

    @classmethod
    def persist(cls, context: Context, namespace: str, name: str) -> None:
        """Record which Deployment the task worked on."""
        context["ti"].xcom_push(key=cls.key, value={"namespace": namespace, "name": name})

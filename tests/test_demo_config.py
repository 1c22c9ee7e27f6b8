"""The demo's Airflow settings live in its home, where any later ``airflow`` command finds them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lyftlearn_provider.testing.demo import is_deploy_result, is_training_result
from lyftlearn_provider.testing.standalone import write_config


def test_airflow_reads_the_demos_settings_from_its_home_alone(tmp_path: Path):
    home = tmp_path / "home"
    write_config(home, tmp_path / "dags", port=28080, extra={"lyftlearn": {"poll_interval": "5"}})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env["AIRFLOW_HOME"] = str(home)
    probe = (
        "from airflow.configuration import conf\n"
        "print(conf.get('api', 'port'), conf.get('core', 'simple_auth_manager_all_admins'),"
        " conf.get('core', 'dags_folder'), conf.get('lyftlearn', 'poll_interval'),"
        " len(conf.get('api_auth', 'jwt_secret')) >= 32, conf.get('core', 'execution_api_server_url'))"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    port, admins, dags, poll, secret, execution = output.stdout.split()[-6:]
    assert (port, admins, dags, poll, secret) == ("28080", "True", str(tmp_path / "dags"), "5", "True")
    assert execution == "http://127.0.0.1:28080/execution/"
    # A fresh secret per home: two demos never share their JWT secret.
    other = tmp_path / "other"
    write_config(other, tmp_path / "dags", port=28080)
    assert (home / "airflow.cfg").read_text() != (other / "airflow.cfg").read_text()


def test_the_demo_tells_a_training_result_from_a_deploy_result():
    training = {"backend": "sagemaker", "job_name": "ll-x", "startup_seconds": {"Starting": 3.0}}
    deploy = {"status": "deployed", "namespace": "default", "deployment": "fraud", "model_uri": "s3://m"}
    assert is_training_result(training) and not is_deploy_result(training)
    assert is_deploy_result(deploy) and not is_training_result(deploy)
    assert not is_training_result("a report") and not is_deploy_result(None)

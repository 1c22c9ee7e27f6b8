from __future__ import annotations

import os
import pathlib
import tempfile

# Airflow reads its configuration at import time: isolate it before any test module imports it.
REPO = pathlib.Path(__file__).resolve().parent.parent
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="lyftlearn-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO)
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _image_in_ecr(training_image: str) -> str:
    """Every test here runs a spec whose image must resolve in the emulator's ECR."""
    return training_image

"""Pure renderings of a RuntimeSpec for each runtime: SageMaker requests and Kubernetes manifests."""

from __future__ import annotations

"""Run the Kubernetes emulator as a standalone process until SIGTERM (or Ctrl-C).

Usage::

    python -m lyftlearn_provider.testing.k8s [--host 127.0.0.1] [--port 0] [--kubeconfig PATH]
        [--namespace default] [--fail-image MARKER ...]

It prints the URL it listens on and, with ``--kubeconfig``, writes a kubeconfig there and prints
the ``KUBECONFIG`` and ``AIRFLOW_CONN_KUBERNETES_DEFAULT`` settings that point clients and Airflow at it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial

from lyftlearn_provider.testing.k8s.apiserver import KubernetesEmulator
from lyftlearn_provider.testing.k8s.server import serve_until_signalled


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m lyftlearn_provider.testing.k8s", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: 0, any free port)")
    parser.add_argument("--kubeconfig", metavar="PATH", help="write a kubeconfig for the emulator to PATH")
    parser.add_argument(
        "--namespace", default="default", help="the kubeconfig's namespace (default: default)"
    )
    parser.add_argument(
        "--fail-image",
        metavar="MARKER",
        action="append",
        default=[],
        help="pods whose image contains MARKER fail to pull it (repeatable), e.g. to demonstrate a rollback",
    )
    return parser.parse_args(argv)


def _configure(markers: Sequence[str], emulator: KubernetesEmulator) -> None:
    for marker in markers:
        emulator.fail_images_containing(marker)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until signalled; return the exit status."""
    args = parse_args(argv)
    serve_until_signalled(
        host=args.host,
        port=args.port,
        kubeconfig_path=args.kubeconfig,
        namespace=args.namespace,
        announce=partial(print, flush=True),
        configure=partial(_configure, args.fail_image),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the AWS emulator as a process of its own (for the demo, or to poke at it with the AWS CLI).

    python -m lyftlearn_provider.testing.aws [--host 127.0.0.1] [--port 0] [--region us-east-1]
        [--autopilot [--training-seconds LO HI] [--seed N]] [--url-file PATH]

Prints the endpoint URL on stdout (and writes it to ``--url-file``), then serves until SIGTERM or
SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from lyftlearn_provider.testing.aws.server import AwsEmulator

_DESCRIPTION = "Serve a local AWS (moto) with realistic SageMaker training jobs until SIGTERM/SIGINT."


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that a reader polling for the file never sees it half written."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    """Serve the emulator until SIGTERM/SIGINT; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m lyftlearn_provider.testing.aws", description=_DESCRIPTION
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--autopilot", action="store_true", help="let training jobs progress by themselves")
    parser.add_argument("--training-seconds", type=float, nargs=2, metavar=("LO", "HI"))
    parser.add_argument("--seed", type=int)
    parser.add_argument("--url-file", type=Path, help="also write the endpoint URL to this file")
    args = parser.parse_args(argv)

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with AwsEmulator(args.host, args.port, args.region) as emulator:
        if args.autopilot:
            training_seconds = None if args.training_seconds is None else tuple(args.training_seconds)
            emulator.control.autopilot(training_seconds=training_seconds, seed=args.seed)
        print(emulator.endpoint_url, flush=True)
        if args.url_file is not None:
            _write_atomically(args.url_file, emulator.endpoint_url + "\n")
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stopping.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

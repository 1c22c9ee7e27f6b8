"""Running the emulator: in a background thread (tests), or in the foreground until a signal (demo)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from aiohttp import web

from lyftlearn_provider.testing.k8s.apiserver import KubernetesEmulator
from lyftlearn_provider.testing.k8s.meta import Obj
from lyftlearn_provider.testing.k8s.rest import ApiHandler

T = TypeVar("T")
START_TIMEOUT_SECONDS = 10.0
CALL_TIMEOUT_SECONDS = 10.0
CONTEXT_NAME = "lyftlearn-emulator"


def kubeconfig(url: str, namespace: str = "default") -> Obj:
    """Return a kubeconfig whose current context points at ``url`` with ``namespace`` as default."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": CONTEXT_NAME,
        "preferences": {},
        "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT_NAME, "user": {"token": "emulator-token"}}],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": namespace},
            }
        ],
    }


def write_kubeconfig(path: str | os.PathLike[str], url: str, namespace: str = "default") -> Path:
    """Write a kubeconfig for ``url`` to ``path`` (JSON, which is valid YAML); return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(kubeconfig(url, namespace), indent=2))
    return target


def airflow_connection(
    namespace: str = "default", kubeconfig_path: str | os.PathLike[str] | None = None
) -> str:
    """Return an Airflow Kubernetes connection as JSON, for an ``AIRFLOW_CONN_<ID>`` variable.

    Without ``kubeconfig_path`` the cncf provider's hooks load the kubeconfig named by ``KUBECONFIG``.
    Give a path only where ``KUBECONFIG`` is unset: a deferrable KubernetesPodOperator hands the
    ``KUBECONFIG`` file to its trigger as ``config_dict``, and the trigger's hook refuses a connection
    that names a kubeconfig as well ("mutually exclusive").
    """
    extra: dict[str, str] = {"namespace": namespace}
    if kubeconfig_path is not None:
        extra["kube_config_path"] = str(kubeconfig_path)
    return json.dumps({"conn_type": "kubernetes", "extra": extra})


async def start_site(emulator: KubernetesEmulator, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving ``emulator`` on ``host:port`` (0: a free port); return the runner and the port."""
    # Cancelling handlers on disconnect ends watches and log follows whose client went away.
    runner = web.AppRunner(
        ApiHandler(emulator).application(), access_log=None, shutdown_timeout=0.5, handler_cancellation=True
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)


class EmulatorServer:
    """Serve a ``KubernetesEmulator`` over HTTP from a background thread; use it as a context manager.

    >>> with EmulatorServer() as server:
    ...     server.write_kubeconfig(tmp_path / "kubeconfig")
    ...     server.call(server.emulator.fail_images_containing, "broken")
    """

    def __init__(
        self, emulator: KubernetesEmulator | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.emulator = emulator or KubernetesEmulator()
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """Return the server's base URL."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        """Start serving (returns once the port is bound)."""
        if self._thread is not None:
            raise RuntimeError("the emulator server is already running")
        self._thread = threading.Thread(target=self._serve, name="k8s-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS) or self._error is not None:
            raise RuntimeError("the Kubernetes emulator did not start") from self._error
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_SECONDS)
        self._thread = None
        self._loop = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            runner, self.port = loop.run_until_complete(start_site(self.emulator, self.host, self.port))
        except BaseException as error:
            self._error = error
            self._ready.set()
            loop.close()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self.emulator.reset()
            loop.run_until_complete(runner.cleanup())
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.close()

    def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run ``fn(*args, **kwargs)`` on the emulator's event loop and return its result.

        The emulator is not thread-safe: tests reach it from their own thread through this.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("the emulator server is not running")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as error:
                future.set_exception(error)

        loop.call_soon_threadsafe(run)
        return future.result(CALL_TIMEOUT_SECONDS)

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str = "default") -> Path:
        """Write a kubeconfig pointing at this server to ``path``; return the path."""
        return write_kubeconfig(path, self.url, namespace)


def serve_until_signalled(
    host: str = "127.0.0.1",
    port: int = 0,
    kubeconfig_path: str | os.PathLike[str] | None = None,
    namespace: str = "default",
    announce: Callable[[str], None] = print,
    configure: Callable[[KubernetesEmulator], None] | None = None,
) -> None:
    """Serve a fresh emulator in the foreground until SIGTERM or SIGINT (the standalone demo process)."""

    async def main() -> None:
        emulator = KubernetesEmulator()
        if configure is not None:
            configure(emulator)
        runner, bound = await start_site(emulator, host, port)
        url = f"http://{host}:{bound}"
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        announce(f"Kubernetes emulator listening on {url}")
        if kubeconfig_path is not None:
            path = write_kubeconfig(kubeconfig_path, url, namespace).resolve()
            announce(f"kubeconfig written to {path}")
            announce(f"export KUBECONFIG={path}")
            announce(f"export AIRFLOW_CONN_KUBERNETES_DEFAULT='{airflow_connection(namespace)}'")
        try:
            await stop.wait()
        finally:
            emulator.reset()
            await runner.cleanup()

    asyncio.run(main())

"""What every LyftLearn AWS hook adds to the amazon provider's: retries that ride out storms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from botocore.config import Config

from lyftlearn_provider.retries import (
    DEFAULT_BOTOCORE_RETRIES,
    DEFAULT_PATIENCE_SECONDS,
    call_patiently,
    is_transient,
)

T = TypeVar("T")


class PatientHookMixin:
    """
    Retry transient AWS failures: botocore's standard mode, then our own back-off for ``patience`` seconds.

    Mix in before an ``AwsBaseHook`` subclass. botocore retries are on unless the connection configures
    its own; :meth:`patiently` wraps synchronous calls so a throttling storm delays a task, not fails it.

    :param patience: seconds a call keeps retrying transient failures.
    :param retry_delay: base delay of that back-off (doubled per failure, jittered).
    """

    log: Any

    def __init__(
        self, *args: Any, patience: float = DEFAULT_PATIENCE_SECONDS, retry_delay: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.patience = patience
        self.retry_delay = retry_delay

    @property
    def config(self) -> Config:
        """Return the botocore config, with retries on by default."""
        config: Config = super().config  # type: ignore[misc]
        if config.retries is None:
            config = config.merge(Config(retries=DEFAULT_BOTOCORE_RETRIES))
        return config

    def patiently(self, call: Callable[[], T], retry_if: Callable[[BaseException], bool] = is_transient) -> T:
        """Return ``call()``, retrying what ``retry_if`` accepts, with back-off, for ``patience`` seconds."""
        return call_patiently(
            call, patience=self.patience, retry_delay=self.retry_delay, log=self.log, retry_if=retry_if
        )

"""A signal event encoded once: the publisher and the database get the same JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import PrivateAttr

from tradebus.events import SignalEvent


class EncodedSignalEvent(SignalEvent):
    """Encoding a signal's ~140 decimals was ~16% of the service's CPU, and it was done twice
    (the publisher's `encode`, then the repository's row). `model_dump_json()` without options,
    which both call, is computed on first use and kept; any option encodes afresh."""

    _json: str | None = PrivateAttr(default=None)

    def model_dump_json(self, **options: Any) -> str:
        if options:
            return super().model_dump_json(**options)
        if self._json is None:
            self._json = super().model_dump_json()
        return self._json

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy encodes afresh: `update` may have changed what the kept JSON says."""
        copy = super().model_copy(update=update, deep=deep)
        copy._json = None
        return copy

"""Dead letters seen recently on `dlq.>` (their payload is JSON but not an event envelope)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationError

MAX_REMEMBERED: Final = 10_000


class DeadLetterNote(BaseModel):
    """The fields of a DLQ message telemetry reports (see `tradebus.bus.BatchConsumer`)."""

    model_config = ConfigDict(extra="ignore")

    service: str = "?"
    consumer: str = "?"
    subject: str = "?"
    reason: str = "?"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    at: datetime
    note: DeadLetterNote


class DeadLetterLog:
    """Arrival times of dead letters within a window (bounded, oldest dropped first)."""

    def __init__(self, window_s: float) -> None:
        self.window = timedelta(seconds=window_s)
        self._letters: deque[DeadLetter] = deque(maxlen=MAX_REMEMBERED)

    def record(self, payload: bytes, arrived: datetime) -> None:
        """Note a dead letter; one whose payload is unreadable still counts."""
        try:
            note = DeadLetterNote.model_validate_json(payload)
        except ValidationError:
            note = DeadLetterNote()
        self._letters.append(DeadLetter(arrived, note))

    def recent(self, now: datetime) -> list[DeadLetter]:
        while self._letters and now - self._letters[0].at > self.window:
            self._letters.popleft()
        return list(self._letters)

"""structlog configuration: JSON lines, or readable coloured lines on a terminal; `trace_id` bound per event."""

from __future__ import annotations

import logging
import sys

import structlog

trace_context = structlog.contextvars.bound_contextvars
"""`with trace_context(trace_id=…):` — every log line inside carries the event's trace id."""


def configure_logging(service: str, level: str = "INFO", fmt: str = "auto") -> None:
    """Route stdlib and structlog output through one renderer tagged with `service`: `fmt` "json"
    (one object a line, for files and collectors), "console" (readable, coloured), or "auto":
    console when stderr is a terminal, JSON otherwise (a supervisor's log file, a container)."""
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()) if console else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, _add_service(service), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,  # logging is off the hot path; keeps capture_logs working
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, _add_service(service)],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # FastStream logs every message at INFO; on a hot path that is a tax we do not pay.
    for noisy in ("faststream", "faststream.access", "uvicorn.access", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _add_service(service: str) -> structlog.typing.Processor:
    def add(_: object, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
        event.setdefault("service", service)
        return event

    return add


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]

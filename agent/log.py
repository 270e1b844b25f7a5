"""Structured logging for the agent.

JSON lines when stderr is not a terminal (systemd's journal, CI), a readable console format
when it is. This must run before `onvif` is imported: that library calls
`logging.basicConfig(level=INFO)` at import time, which is a no-op only once the root logger
already has a handler.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog

from agent.redact import redact_tree

LogFormat = Literal["auto", "json", "console"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_configured = False


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of each record, not at configuration
    time, so a replaced stderr (pytest's capture, a daemon redirecting it) never leaves the
    handler writing to a closed stream."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # the stream is always the current sys.stderr


def _redact_event(
    _logger: object, _name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Last step before rendering, for structlog and stdlib records alike (the libraries'
    messages, tracebacks): no camera password, URL secret or `enc:v1:` token reaches the log."""
    return {key: redact_tree(value) for key, value in event.items()}


def configure_logging(
    level: str = "info", *, fmt: LogFormat = "auto", stream: object = None
) -> None:
    """Route both structlog and stdlib logging through one formatter on `stream` (stderr)."""
    global _configured
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not getattr(out, "isatty", lambda: False)())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=getattr(out, "isatty", lambda: False)())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_event,
            renderer,
        ],
    )
    handler: logging.Handler = (
        _CurrentStderrHandler() if stream is None else logging.StreamHandler(out)  # type: ignore[arg-type]
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = _LEVELS.get(level.lower(), logging.INFO)
    root.setLevel(numeric)
    # zeep and the onvif library are very chatty at INFO about WSDL loading.
    for noisy in ("zeep", "onvif", "httpx", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )
    _configured = True


def ensure_configured() -> None:
    """Install the default configuration if nothing has yet (library use, tests)."""
    if not _configured and not logging.getLogger().handlers:
        configure_logging()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]

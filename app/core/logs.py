"""The service's log lines: text (the default) or one JSON object a line (`EFDB_LOG_FORMAT=json`).

Text: uvicorn's format, every line of the service's own loggers (`efdb.*`, `app.*`) ending
with `request_id=…`; the access log is uvicorn's, on at `--log-level debug`.

JSON, for a log shipper: every line on stderr, whoever writes it (the service, uvicorn, a
library), is one object with `time` (ISO 8601, UTC), `level`, `logger`, `message` and
`request_id` (null outside a request). Each answered request is one line of the `efdb.access`
logger (it replaces uvicorn's access log) with, besides, `client_id` (the bearer token's
client, or the client `/oauth/token` issued a token to; null without one), `client_address`,
`method`, `route` (the route's template, as in `/metrics`), `path` (without the query string,
which may carry search terms), `status` and `duration_ms`.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.metrics import observed, route_template
from app.core.request_id import NO_REQUEST, RequestIdFilter

LogFormat = Literal["text", "json"]
# The service's own loggers: `efdb.*` (auth, exports, webhooks, errors) and `app.*`.
SERVICE_LOGGERS = ("efdb", "app")
ACCESS_LOGGER = "efdb.access"
access_log = logging.getLogger(ACCESS_LOGGER)


class JsonLogFormatter(JsonFormatter):
    """One JSON object per record: time, level, logger, message, request_id, then the
    record's extra fields (an access line's request fields)."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            # uvicorn repeats each message with terminal colours as an extra field.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        if log_data.get("request_id") == NO_REQUEST:
            log_data["request_id"] = None
        fields = dict(log_data)
        log_data.clear()
        log_data["time"] = fields.pop("time")  # first, as a reader scans for it
        log_data.update(fields)


def log_config(log_format: LogFormat, level: str = "info") -> dict[str, Any]:
    """The `logging.config.dictConfig` for `efdb serve` (given to uvicorn as `log_config`)."""
    from uvicorn.config import LOGGING_CONFIG

    service_level = level.upper()
    if log_format == "text":
        config: dict[str, Any] = {
            **LOGGING_CONFIG,
            "formatters": {**LOGGING_CONFIG["formatters"]},
            "handlers": {**LOGGING_CONFIG["handlers"]},
            "loggers": {**LOGGING_CONFIG["loggers"]},
        }
        access = config["formatters"]["access"]
        config["formatters"]["access"] = {
            **access,
            "fmt": access["fmt"] + " request_id=%(request_id)s",
        }
        config["formatters"]["app"] = {
            "format": "%(levelname)s %(name)s request_id=%(request_id)s: %(message)s"
        }
        config["handlers"]["access"] = {**config["handlers"]["access"], "filters": ["request_id"]}
        handler = "app"
        config["handlers"]["app"] = {
            "formatter": "app",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "filters": ["request_id"],
        }
    else:
        handler = "json"
        config = {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": JsonLogFormatter}},
            "handlers": {
                "json": {
                    "formatter": "json",
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stderr",
                    "filters": ["request_id"],
                }
            },
            "loggers": {
                "uvicorn": {"handlers": ["json"], "level": "INFO", "propagate": False},
                "uvicorn.error": {"level": "INFO"},
                # The service's own access line (AccessLog) replaces uvicorn's.
                "uvicorn.access": {"handlers": [], "level": "INFO", "propagate": False},
            },
            # Anything else (a library's warning) is a JSON line too.
            "root": {"handlers": ["json"], "level": "WARNING"},
        }
    config["filters"] = {"request_id": {"()": RequestIdFilter}}
    for name in SERVICE_LOGGERS:
        config["loggers"][name] = {
            "handlers": [handler],
            "level": service_level,
            "propagate": False,
        }
    return config


PROGRESS_LOGGER = "efdb.progress"


def progress_record(message: str) -> str:
    """A command's progress line as the JSON log line `efdb.progress` would write (one-shot
    commands configure no logging)."""
    record = logging.makeLogRecord(
        {
            "name": PROGRESS_LOGGER,
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": message,
            "request_id": NO_REQUEST,
        }
    )
    return JsonLogFormatter().format(record)


class AccessLog:
    """One `efdb.access` line per answered request (JSON mode only). Runs inside `RequestID`,
    so the line carries the request's id; the client id is what authentication put in the
    request's state (no query of its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def log(status: int, seconds: float) -> None:
            client = scope.get("client")
            access_log.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "client_id": scope.get("state", {}).get("client_id"),
                    "client_address": client[0] if client else None,
                    "method": scope["method"],
                    "route": route_template(scope, status),
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )

        await observed(self.app, scope, receive, send, log)

"""Log lines of every MarketPulse process, the operator's (kopf's included) and the workloads'.

In a pod: one JSON object per line on stderr, from python-json-logger, with the same keys everywhere:
`time` (UTC, milliseconds), `level`, `logger`, `message`, `workload`, the record's extra fields, `error`
(the traceback, if any) and, for kopf's per-object loggers, `object` (the StockPipeline it is about).
On a terminal: one readable, coloured line per record. `MARKETPULSE_LOG_FORMAT` (auto, json, text)
chooses; auto is text when stderr is a terminal and JSON otherwise.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

import orjson
import typer
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from marketpulse.contract.settings.common import LogFormat

# kopf's per-object loggers carry these: the object's reference (logged as `object`), whether to post
# the line as a Kubernetes event, and kopf's settings (never logged).
KOPF_OBJECT = "k8s_ref"
_KOPF_ATTRS = ("k8s_ref", "k8s_skip", "settings")
_SKIPPED = frozenset({*RESERVED_ATTRS, *_KOPF_ATTRS, "taskName"})
_LEVEL_COLOURS = {"DEBUG": "blue", "INFO": "green", "WARNING": "yellow", "ERROR": "red", "CRITICAL": "red"}


def _utc_time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"


class JsonFormatter(OrjsonFormatter):
    """python-json-logger's formatter with MarketPulse's keys. orjson writes compact lines, so a
    reader may look for `"message":"..."` in a line before parsing it."""

    def __init__(self, workload: str) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "exc_info": "error"},
            static_fields={"workload": workload},
            reserved_attrs=sorted(_SKIPPED),
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return _utc_time(record)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["level"] = record.levelname.lower()
        if reference := getattr(record, KOPF_OBJECT, None):
            log_data["object"] = reference
        # The traceback wins over an extra field of the same name.
        if "exc_info" in message_dict:
            log_data["error"] = message_dict["exc_info"]


class TextFormatter(logging.Formatter):
    """`12:00:01.234 INFO  marketpulse.ingest.main: message key=value`, the level coloured when asked;
    kopf's object loggers get the object as a `[namespace/name]` prefix, as kopf's own text format."""

    def __init__(self, *, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def _paint(self, text: str, **style: Any) -> str:
        return typer.style(text, **style) if self.colour else text

    def format(self, record: logging.LogRecord) -> str:
        time = _utc_time(record)[11:-1]
        level = self._paint(f"{record.levelname:<7}", fg=_LEVEL_COLOURS.get(record.levelname), bold=True)
        message = record.getMessage()
        if reference := getattr(record, KOPF_OBJECT, None):
            where = "/".join(str(p) for p in (reference.get("namespace"), reference.get("name")) if p)
            message = f"[{where}] {message}"
        extras = " ".join(
            self._paint(f"{key}={value}", dim=True)
            for key, value in vars(record).items()
            if key not in _SKIPPED and not key.startswith("_") and key not in {"workload", "object"}
        )
        line = f"{self._paint(time, dim=True)} {level} {self._paint(record.name, fg='cyan')}: {message}"
        if extras:
            line += f" {extras}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + self._paint(record.exc_text, fg="red")
        return line


def resolved_format(requested: LogFormat, stream: IO[str]) -> Literal["json", "text"]:
    if requested != "auto":
        return requested
    return "text" if stream.isatty() else "json"


def formatter_for(workload: str, log_format: LogFormat, stream: IO[str]) -> logging.Formatter:
    if resolved_format(log_format, stream) == "json":
        return JsonFormatter(workload)
    return TextFormatter(colour=stream.isatty())


def configure_logging(workload: str, level: str = "INFO", log_format: LogFormat = "auto") -> None:
    """The root logger writes `workload`'s records to stderr in `log_format` (see the module's doc)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(workload, log_format, sys.stderr))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; URLs can carry secrets (webhook URLs, tokens).
    for chatty in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


_JSON_KEYS = {"time", "level", "logger", "message", "workload", "error", "object"}


def readable(line: str, *, colour: bool = True) -> str:
    """A JSON log line of ours as TextFormatter writes it (what `marketpulse run` shows of its
    workloads, whose own logs stay JSON in their files); any other line unchanged."""
    if not line.startswith("{"):
        return line
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(data, dict) or not {"level", "logger", "message"} <= data.keys():
        return line
    level = str(data["level"]).upper()
    try:
        moment = datetime.fromisoformat(str(data.get("time")))
    except ValueError:
        moment = datetime.now(UTC)
    fields = {
        "name": str(data["logger"]),
        "levelname": level,
        "levelno": logging.getLevelNamesMapping().get(level, logging.INFO),
        "msg": str(data["message"]),
        "created": moment.timestamp(),
        "msecs": moment.microsecond // 1000,
        "exc_text": data.get("error") if isinstance(data.get("error"), str) else None,
        KOPF_OBJECT: data.get("object") if isinstance(data.get("object"), dict) else None,
    }
    extras = {k: v for k, v in data.items() if k not in _JSON_KEYS and k not in _SKIPPED}
    return TextFormatter(colour=colour).format(logging.makeLogRecord({**extras, **fields}))

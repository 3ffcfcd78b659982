"""Wire format of events: compact JSON values, raw-bytes audio, and typed decode errors.

Headers on every message: ``event_type`` and ``schema_version`` (so a consumer can route or
reject without parsing the value). Audio frames put their metadata as compact JSON in the
``dasan-meta`` header and the audio bytes in the value.

Schema evolution: :func:`encode` writes what the (strict) models hold; :func:`decode` accepts an
event of this consumer's major version (``schema_version <= SCHEMA_VERSION``) even when it carries
fields this version does not know — a newer producer's additive, optional fields — and drops them
(``ignored`` collects their names). A newer major version is refused
(``unsupported_schema_version``) and goes to the dead-letter topic.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .events import IGNORED_FIELDS, SCHEMA_VERSION, TOLERATE_UNKNOWN, AnyEvent, AudioFrame, Event

META_HEADER = "dasan-meta"
TYPE_HEADER = "event_type"
VERSION_HEADER = "schema_version"

DEFAULT_MAX_MESSAGE_BYTES = 1_048_576

Headers = list[tuple[str, bytes]]

_any_event: TypeAdapter[Any] = TypeAdapter(AnyEvent)


class DecodeError(ValueError):
    """A message that cannot become an event. ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class OversizedMessage(ValueError):
    """An event whose serialised form exceeds the configured limit; it is refused, not truncated."""

    def __init__(self, size: int, limit: int, what: str) -> None:
        super().__init__(f"{what} is {size} bytes, over the {limit}-byte message limit")
        self.size = size
        self.limit = limit


def type_of(event: Event) -> str:
    """The event's ``type`` (``"call_started"``, …)."""
    # Each concrete event declares ``type`` as a Literal field with its default; the base class does not.
    return str(type(event).model_fields["type"].default)


def encode(event: Event, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> tuple[bytes, bytes, Headers]:
    """Event → (key, value, headers). Raises :class:`OversizedMessage`."""
    event_type = type_of(event)
    headers: Headers = [
        (TYPE_HEADER, event_type.encode()),
        (VERSION_HEADER, str(event.schema_version).encode()),
    ]
    if isinstance(event, AudioFrame):
        meta = event.model_dump_json(exclude={"audio"}).encode()
        headers.append((META_HEADER, meta))
        value = event.audio
    else:
        value = event.model_dump_json().encode()
    size = len(value) + sum(len(k) + len(v) for k, v in headers)
    if size > max_bytes:
        raise OversizedMessage(size, max_bytes, f"{event_type} for call {event.call_id}")
    return event.call_id.encode(), value, headers


def _header(headers: Headers | None, name: str) -> bytes | None:
    for k, v in headers or ():
        if k == name:
            return v
    return None


def _check_version(version: Any) -> None:
    if not isinstance(version, int) or version < 1:
        raise DecodeError("bad_schema_version", f"schema_version {version!r} is not a positive integer")
    if version > SCHEMA_VERSION:
        raise DecodeError(
            "unsupported_schema_version",
            f"schema_version {version} is newer than this consumer understands ({SCHEMA_VERSION})",
        )


def decode(
    value: bytes | None,
    headers: Headers | None = None,
    key: bytes | None = None,
    ignored: list[str] | None = None,
) -> Event:
    """(value, headers, key) → event. Raises :class:`DecodeError` with the reason.

    Fields unknown to this version are dropped; pass a list as ``ignored`` to learn their names
    (``Model.field``).
    """
    context: dict[str, Any] = {TOLERATE_UNKNOWN: True, IGNORED_FIELDS: ignored if ignored is not None else []}
    if value is None:
        raise DecodeError("empty", "message has no value (tombstone)")
    event_type = _header(headers, TYPE_HEADER)
    try:
        if event_type == b"audio_frame":
            meta_raw = _header(headers, META_HEADER)
            if meta_raw is None:
                raise DecodeError("missing_header", f"audio frame without {META_HEADER} header")
            try:
                meta = json.loads(meta_raw)
            except ValueError as exc:
                raise DecodeError("invalid_json", f"{META_HEADER} header: {exc}") from exc
            if not isinstance(meta, dict):
                raise DecodeError("invalid_schema", f"{META_HEADER} header is not an object")
            _check_version(meta.get("schema_version"))
            event: Event = AudioFrame.model_validate({**meta, "audio": value}, context=context)
        else:
            try:
                data = json.loads(value)
            except (ValueError, UnicodeDecodeError) as exc:
                raise DecodeError("invalid_json", str(exc)[:300]) from exc
            if not isinstance(data, dict):
                raise DecodeError("invalid_schema", "event is not a JSON object")
            _check_version(data.get("schema_version"))
            event = _any_event.validate_python(data, context=context)
    except ValidationError as exc:
        raise DecodeError("invalid_schema", _short_validation(exc)) from exc
    if key is not None and key != event.call_id.encode():
        raise DecodeError("key_mismatch", f"message key {key!r} is not the event's call id {event.call_id!r}")
    return event


def _short_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)[:1000]


# --------------------------------------------------------------------------- dead letters

DLQ_ERROR = "dlq-error"
DLQ_REASON = "dlq-reason"
DLQ_TOPIC = "dlq-source-topic"
DLQ_PARTITION = "dlq-source-partition"
DLQ_OFFSET = "dlq-source-offset"
DLQ_CONSUMER = "dlq-consumer-group"


def dead_letter_headers(
    *,
    reason: str,
    error: str,
    topic: str,
    partition: int,
    offset: int,
    group: str | None,
    original: Headers | None,
) -> Headers:
    """Headers of a dead letter: the original headers plus the error and the source offset."""
    out: Headers = [(k, v) for k, v in (original or ()) if not k.startswith("dlq-")]
    out += [
        (DLQ_REASON, reason.encode()),
        (DLQ_ERROR, error.encode()[:4000]),
        (DLQ_TOPIC, topic.encode()),
        (DLQ_PARTITION, str(partition).encode()),
        (DLQ_OFFSET, str(offset).encode()),
    ]
    if group:
        out.append((DLQ_CONSUMER, group.encode()))
    return out


def read_dead_letter(headers: Headers) -> dict[str, str]:
    """The dlq-* headers of a dead letter as a dict (for tools and tests)."""
    return {k: v.decode(errors="replace") for k, v in headers if k.startswith("dlq-")}

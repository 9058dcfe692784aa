"""Wire details of the Docker Engine API as dockerd 20.10 (API 1.41) writes and reads them.

Times (Go's RFC 3339 layouts), durations as `docker ps` words them, query booleans, the JSON
`filters` parameter, unix timestamps with nanoseconds, the multiplexed log frames, and
deterministic ids.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from datetime import UTC, datetime

API_VERSION = "1.41"
MIN_API_VERSION = "1.12"
ENGINE_VERSION = "20.10.24"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time
NANOS = 1_000_000_000
STDOUT = 1
STDERR = 2
STREAM_IDS = {"stdout": STDOUT, "stderr": STDERR}
FALSE_WORDS = frozenset({"", "0", "no", "false", "none"})


class BadParameter(ValueError):
    """A query parameter dockerd would answer with 400."""


def to_nanos(seconds: float) -> int:
    return round(seconds * NANOS)


def _seconds_text(ns: int) -> tuple[str, int]:
    seconds, fraction = divmod(ns, NANOS)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text, fraction


def rfc3339_nano(ns: int) -> str:
    """Go's `time.RFC3339Nano` in UTC: trailing zeros of the fraction dropped."""
    text, fraction = _seconds_text(ns)
    digits = f"{fraction:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


def rfc3339_nano_fixed(ns: int) -> str:
    """The layout of log timestamps: always nine fraction digits."""
    text, fraction = _seconds_text(ns)
    return f"{text}.{fraction:09d}Z"


def human_duration(seconds: float) -> str:
    """go-units `HumanDuration`, as in "Up 2 hours" and "Exited (0) 5 minutes ago"."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole < 60:
        return "1 second" if whole == 1 else f"{whole} seconds"
    minutes = whole // 60
    if minutes < 60:
        return "About a minute" if minutes == 1 else f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    for limit, unit_hours, unit in ((24 * 14, 24, "days"), (24 * 60, 24 * 7, "weeks")):
        if hours < limit:
            return f"{hours // unit_hours} {unit}"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{int(seconds / 3600) // (24 * 365)} years"


def parse_bool(value: str | None, *, default: bool = False) -> bool:
    """dockerd's `BoolValue`: anything but "", 0, no, false and none is true (any case)."""
    if value is None:
        return default
    return value.strip().lower() not in FALSE_WORDS


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """The JSON `filters` parameter: {"key": ["v", ...]}, or the legacy {"key": {"v": true}}."""
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError as error:
        raise BadParameter(f"invalid filter: {error.msg}") from error
    if not isinstance(decoded, dict):
        raise BadParameter("invalid filter: not a JSON object")
    return {str(key): _filter_values(key, values) for key, values in decoded.items()}


def _filter_values(key: str, values: object) -> list[str]:
    if isinstance(values, list) and all(isinstance(value, str) for value in values):
        return list(values)
    if isinstance(values, dict):
        return [str(value) for value, enabled in values.items() if enabled]
    raise BadParameter(f"invalid filter '{key}'")


def parse_timestamp(raw: str) -> int:
    """A unix time as the SDK sends it ("1700000000", "1700000000.25") in nanoseconds."""
    match = re.fullmatch(r"(-?\d+)(?:\.(\d{1,9}))?", raw.strip())
    if match is None:
        raise BadParameter(f"invalid timestamp {raw!r}")
    seconds, fraction = match.groups()
    return int(seconds) * NANOS + int((fraction or "0").ljust(9, "0"))


def frame(stream: str, payload: bytes) -> bytes:
    """One frame of the multiplexed stream of a non-TTY container: type, 3 zeros, length."""
    return struct.pack(">BxxxL", STREAM_IDS[stream], len(payload)) + payload


def digest(*parts: str) -> str:
    """64 hex digits, stable for the same parts (container, image and network ids)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def image_id(reference: str) -> str:
    return f"sha256:{digest('image', reference)}"


def split_reference(reference: str) -> tuple[str, str]:
    """ "vllm/vllm-openai:v0.11.0" -> ("vllm/vllm-openai", "v0.11.0"); no tag means "latest"."""
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, "latest"


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())

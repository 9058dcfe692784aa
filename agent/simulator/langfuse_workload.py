"""The synthetic, deterministic workload a fake Langfuse reports, computed, never stored.

Traces are spread evenly over every UTC day, ``traces_per_day`` of them: trace ``g`` (counted
from the first midnight of the history) starts at ``base + g * DAY / traces_per_day``. Each trace
has two observations: a generation of model ``models[g % len(models)]`` with fixed token counts
and cost per model, and a span without a model. Every ``sessions_every``-th trace opens a session;
every ``scores_every``-th trace gets one score, whose data type cycles NUMERIC, BOOLEAN,
CATEGORICAL, TEXT. Counts over any time range are arithmetic, so a 10,000-trace day costs nothing
until a page of items is asked for, and then only that page is built.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

DAY_MS = 86_400_000
SCORE_KINDS = (
    ("helpfulness", "NUMERIC"),
    ("user_feedback", "BOOLEAN"),
    ("tone", "CATEGORICAL"),
    ("reviewer_note", "TEXT"),
)
TONES = ("neutral", "friendly", "curt")
# One NUMERIC score in this many has a null value (older servers allowed it).
NULL_NUMERIC_EVERY = 5
PROJECT_ID = "cm0projsimulated000000000"


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    return int(moment.timestamp() * 1000)


def iso_ms(ms: int) -> str:
    """Langfuse's timestamp format: ``2026-08-19T14:02:11.482Z``."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso(text: str) -> int:
    """ISO 8601 (``Z`` or an offset) -> epoch milliseconds; ValueError if it is not one."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_ms(moment)


def _count_in(lo: int, hi: int, every: int, offset: int = 0) -> int:
    """How many g in [lo, hi) have g % every == offset."""

    def below(n: int) -> int:
        return max(0, (n - offset + every - 1) // every)

    return below(hi) - below(lo) if hi > lo else 0


@dataclass(frozen=True)
class ModelUsage:
    """What one generation of a model costs."""

    input_tokens: int
    output_tokens: int
    cost_usd: float

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class UsageRow:
    """Observations of one model (None: spans) in a time range, as the APIs aggregate them."""

    model: str | None
    observations: int
    traces: int
    input_tokens: int
    output_tokens: int
    cost_usd: float

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class LangfuseWorkload:
    """Every trace, observation, session and score of the fake project, by arithmetic."""

    def __init__(
        self,
        models: Sequence[str],
        *,
        traces_per_day: int,
        start: datetime,
        history_days: int = 9,
        sessions_every: int = 5,
        scores_every: int = 10,
    ) -> None:
        if not models or traces_per_day <= 0:
            raise ValueError("need at least one model and one trace per day")
        self.models = tuple(models)
        self.traces_per_day = traces_per_day
        midnight = datetime.combine(start.astimezone(UTC).date(), datetime.min.time(), UTC)
        self.base_ms = to_ms(midnight - timedelta(days=history_days))
        self.sessions_every = sessions_every
        self.scores_every = scores_every

    def usage_of(self, index: int) -> ModelUsage:
        """The fixed price list: the first model is local (free), the others cost."""
        return ModelUsage(300 + 100 * index, 60 + 20 * index, round(0.0004 * index, 6))

    # -- time <-> trace index ------------------------------------------------------------------

    def trace_ms(self, g: int) -> int:
        return self.base_ms + g * DAY_MS // self.traces_per_day

    def first_at_or_after(self, ms: int) -> int:
        """The smallest trace index starting at or after ``ms``."""
        offset = ms - self.base_ms
        return max(0, -((-offset * self.traces_per_day) // DAY_MS))

    def trace_range(self, from_ms: int | None, to_ms_: int | None, now_ms: int) -> range:
        """Trace indices with from <= timestamp < to, and timestamp <= now."""
        lo = 0 if from_ms is None else self.first_at_or_after(from_ms)
        hi = self.first_at_or_after(now_ms + 1)
        if to_ms_ is not None:
            hi = min(hi, self.first_at_or_after(to_ms_))
        return range(lo, max(lo, hi))

    # -- aggregates ----------------------------------------------------------------------------

    def traces(self, span: range) -> int:
        return len(span)

    def sessions(self, span: range) -> int:
        return _count_in(span.start, span.stop, self.sessions_every)

    def scores(self, span: range) -> int:
        return _count_in(span.start, span.stop, self.scores_every)

    def usage(self, span: range) -> list[UsageRow]:
        """One row per model with observations in ``span``, then the spans' row (model None)."""
        rows = []
        for index, model in enumerate(self.models):
            n = _count_in(span.start, span.stop, len(self.models), index)
            if n:
                price = self.usage_of(index)
                rows.append(
                    UsageRow(
                        model,
                        n,
                        n,
                        n * price.input_tokens,
                        n * price.output_tokens,
                        n * price.cost_usd,
                    )
                )
        if len(span):
            rows.append(UsageRow(None, len(span), len(span), 0, 0, 0.0))
        return rows

    def days(self, span: range) -> list[tuple[date, range]]:
        """``span`` split at UTC midnights, newest day first."""
        out = []
        g = span.start
        while g < span.stop:
            day = (self.trace_ms(g) - self.base_ms) // DAY_MS
            end = min(span.stop, self.first_at_or_after(self.base_ms + (day + 1) * DAY_MS))
            out.append((datetime.fromtimestamp(self.trace_ms(g) / 1000, UTC).date(), range(g, end)))
            g = end
        return out[::-1]

    # -- items (built per page only) -----------------------------------------------------------

    def trace_item(self, g: int) -> dict[str, Any]:
        """One trace as ``GET /api/public/traces`` lists it."""
        ts = iso_ms(self.trace_ms(g))
        trace_id = _uuid("t", g)
        scored = g % self.scores_every == 0
        return {
            "id": trace_id,
            "externalId": None,
            "timestamp": ts,
            "name": "support-chat" if g % 2 else "rag-answer",
            "input": {"messages": [{"role": "user", "content": f"question {g}"}]},
            "output": {"role": "assistant", "content": f"answer {g}"},
            "sessionId": self.session_id(g),
            "release": "2026.08.2",
            "version": "v14",
            "userId": f"user-{g % 97}",
            "metadata": {"tenant": "acme"},
            "tags": ["production", "chat"],
            "public": False,
            "bookmarked": False,
            "environment": "production",
            "projectId": PROJECT_ID,
            "createdAt": ts,
            "updatedAt": ts,
            "htmlPath": f"/project/{PROJECT_ID}/traces/{trace_id}",
            "latency": round(0.5 + (g % 40) / 10, 3),
            "totalCost": self.usage_of(g % len(self.models)).cost_usd,
            "observations": [_uuid("o", 2 * g), _uuid("o", 2 * g + 1)],
            "scores": [_uuid("s", g)] if scored else [],
        }

    def session_id(self, g: int) -> str:
        return f"sess-{g - g % self.sessions_every:09d}"

    def session_item(self, g: int) -> dict[str, Any]:
        return {
            "id": self.session_id(g),
            "createdAt": iso_ms(self.trace_ms(g)),
            "projectId": PROJECT_ID,
            "environment": "production",
        }

    def score_kind(self, g: int) -> tuple[str, str]:
        return SCORE_KINDS[(g // self.scores_every) % len(SCORE_KINDS)]

    def numeric_value(self, g: int) -> float | None:
        """The value of a NUMERIC (0..1) or BOOLEAN (0/1) score; None for a null numeric."""
        k = g // self.scores_every
        if self.score_kind(g)[1] == "BOOLEAN":
            return 0.0 if k % 3 == 0 else 1.0
        if (k // len(SCORE_KINDS)) % NULL_NUMERIC_EVERY == 0:
            return None
        return round((k * 37 % 100) / 100, 2)

    def score_v2(self, g: int, *, with_trace: bool) -> dict[str, Any]:
        """One score as ``GET /api/public/v2/scores`` lists it (Langfuse v3)."""
        name, data_type = self.score_kind(g)
        ts = iso_ms(self.trace_ms(g))
        item: dict[str, Any] = {
            "id": _uuid("s", g),
            "projectId": PROJECT_ID,
            "traceId": _uuid("t", g),
            "sessionId": None,
            "observationId": _uuid("o", 2 * g) if data_type == "NUMERIC" else None,
            "datasetRunId": None,
            "name": name,
            "source": "EVAL" if data_type == "NUMERIC" else "API",
            "dataType": data_type,
            "timestamp": ts,
            "createdAt": ts,
            "updatedAt": ts,
            "authorUserId": None,
            "comment": None,
            "metadata": {},
            "configId": None,
            "queueId": None,
            "environment": "production",
        }
        if data_type in ("NUMERIC", "BOOLEAN"):
            item["value"] = self.numeric_value(g)
            if data_type == "BOOLEAN":
                item["stringValue"] = "True" if item["value"] else "False"
        elif data_type == "CATEGORICAL":
            item["value"] = None  # the defensive case of the reference sample
            item["stringValue"] = TONES[g % len(TONES)]
        else:  # TEXT: no value key at all
            item["stringValue"] = f"note on trace {g}"
        if with_trace:
            item["trace"] = {
                "userId": f"user-{g % 97}",
                "tags": ["production", "chat"],
                "environment": "production",
                "sessionId": self.session_id(g),
            }
        return item

    def score_v3(self, g: int) -> dict[str, Any]:
        """One score as ``GET /api/public/v3/scores`` lists it (Langfuse v4): polymorphic value."""
        name, data_type = self.score_kind(g)
        ts = iso_ms(self.trace_ms(g))
        value: Any
        if data_type == "NUMERIC":
            value = self.numeric_value(g)
        elif data_type == "BOOLEAN":
            value = self.numeric_value(g) == 1.0
        elif data_type == "CATEGORICAL":
            value = TONES[g % len(TONES)]
        else:
            value = f"note on trace {g}"
        return {
            "id": _uuid("s", g),
            "projectId": PROJECT_ID,
            "name": name,
            "value": value,
            "dataType": data_type,
            "source": "API",
            "timestamp": ts,
            "environment": "production",
            "createdAt": ts,
            "updatedAt": ts,
            "subject": {"kind": "trace", "id": _uuid("t", g)},
        }

    def scored_traces(self, span: range) -> range:
        """Trace indices in ``span`` that carry a score, oldest first."""
        first = -(-span.start // self.scores_every) * self.scores_every
        return range(first, span.stop, self.scores_every)


def _uuid(kind: str, n: int) -> str:
    """A stable uuid-shaped id; the kind letter keeps traces, observations and scores apart."""
    digits = f"{n:032x}"
    prefix = {"t": "7", "o": "c", "s": "5"}[kind]
    return f"{prefix}{digits[1:8]}-{digits[8:12]}-4{digits[13:16]}-8{digits[17:20]}-{digits[20:]}"


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The offset a cursor stands for; ValueError if it is not one of ours."""
    padded = cursor + "=" * (-len(cursor) % 4)
    offset = json.loads(base64.urlsafe_b64decode(padded))["o"]
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(cursor)
    return offset

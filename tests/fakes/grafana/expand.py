"""Template variables in a panel's PromQL, expanded as Grafana does before querying (the
project's own ``mcp_server.grafana.templating``, which its tests check against Grafana's rules)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcp_server.grafana.templating import ALL, dashboard_variables, expand


def expand_expr(
    expr: str,
    values: Mapping[str, Sequence[str]],
    model: Mapping[str, Any],
    *,
    interval_seconds: float,
    range_seconds: float,
) -> str:
    """``expr`` with the dashboard's variables (``values``: the selected ones) and the built-in
    interval variables replaced; an expression Grafana could not expand is sent as written."""
    settings = dashboard_variables(model)
    selected = {
        name: [ALL if v in ("All", ALL) else v for v in chosen] for name, chosen in values.items()
    }
    try:
        return expand(
            expr,
            selected,
            interval_seconds=interval_seconds,
            range_seconds=range_seconds,
            all_value=settings.all_value,
            plain=settings.plain,
        )
    except ValueError:
        return expr

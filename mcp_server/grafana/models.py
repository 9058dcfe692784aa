"""What we know of a dashboard and of its panels: shared by the API client, the browser, the
MCP tools and the scenario harness."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class DashboardSummary(BaseModel):
    uid: str
    title: str
    url: str
    tags: list[str] = Field(default_factory=list)
    folder: str | None = None


class Target(BaseModel):
    ref_id: str
    expr: str
    datasource: str | None = None
    legend: str | None = None


class PanelSpec(BaseModel):
    """One panel as the dashboard JSON defines it (rows flattened: ``row`` names the row)."""

    id: int
    title: str
    type: str
    targets: list[Target] = Field(default_factory=list)
    unit: str | None = None
    description: str | None = None
    row: str | None = None


class Variable(BaseModel):
    name: str
    type: str
    label: str | None = None
    query: str | None = None
    current: list[str] = Field(default_factory=list)
    multi: bool = False
    include_all: bool = False


class DashboardSpec(BaseModel):
    uid: str
    title: str
    tags: list[str] = Field(default_factory=list)
    time_from: str = "now-6h"
    time_to: str = "now"
    variables: list[Variable] = Field(default_factory=list)
    panels: list[PanelSpec] = Field(default_factory=list)


PanelStatus = Literal["ok", "loading", "error", "no_data"]


class PanelState(BaseModel):
    """What a person sees on one panel once the dashboard settled."""

    id: int | None
    title: str
    state: PanelStatus
    message: str | None = None


class DashboardCheck(BaseModel):
    """Every panel's state after the dashboard became ready (or the wait timed out)."""

    uid: str
    title: str
    url: str
    ready: bool
    waited_seconds: float
    panels: list[PanelState]
    still_loading: list[str] = Field(default_factory=list)

    @property
    def problems(self) -> list[PanelState]:
        return [panel for panel in self.panels if panel.state != "ok"]

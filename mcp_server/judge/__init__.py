"""Claude as the judge of dashboard screenshots (see claude.Judge)."""

from mcp_server.judge.budget import BudgetSummary, RunBudget
from mcp_server.judge.cache import VerdictCache
from mcp_server.judge.claude import Judge, OnText
from mcp_server.judge.errors import (
    BudgetExhausted,
    JudgeAPIError,
    JudgeDeadline,
    JudgeError,
    JudgeRejected,
    JudgeUnavailable,
    MissingAPIKey,
)
from mcp_server.judge.images import InvalidImage, PreparedImage, image_tokens, prepare_image
from mcp_server.judge.models import Judgement, JudgeRequest, PanelEvidence, Verdict

__all__ = [
    "BudgetExhausted",
    "BudgetSummary",
    "InvalidImage",
    "Judge",
    "JudgeAPIError",
    "JudgeDeadline",
    "JudgeError",
    "JudgeRejected",
    "JudgeRequest",
    "JudgeUnavailable",
    "Judgement",
    "MissingAPIKey",
    "OnText",
    "PanelEvidence",
    "PreparedImage",
    "RunBudget",
    "Verdict",
    "VerdictCache",
    "image_tokens",
    "prepare_image",
]

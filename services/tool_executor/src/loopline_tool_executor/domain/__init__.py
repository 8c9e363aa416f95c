"""The executor's pure rules: may this agent call this tool, may this call run again, and
what is the run told of a call a guard stopped?"""

from loopline_tool_executor.domain.guarded import Stopped, published, stopped
from loopline_tool_executor.domain.ledger import (
    Action,
    Claim,
    Outcome,
    Prior,
    next_action,
    outcome_of,
    outcome_record,
    unknown_outcome,
)
from loopline_tool_executor.domain.policy import refusal

__all__ = [
    "Action",
    "Claim",
    "Outcome",
    "Prior",
    "Stopped",
    "next_action",
    "outcome_of",
    "outcome_record",
    "published",
    "refusal",
    "stopped",
    "unknown_outcome",
]

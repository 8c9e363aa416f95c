"""The executor's pure rules: may this agent call this tool, and may this call run again?"""

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
    "next_action",
    "outcome_of",
    "outcome_record",
    "refusal",
    "unknown_outcome",
]

"""The executor's pure rules: may this agent call this tool?"""

from loopline_tool_executor.domain.policy import refusal

__all__ = ["refusal"]

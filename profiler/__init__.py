"""Release → measurements → report: the stage that measures a shipped model on its board.

Public API::

    AGENT_PATH, AGENT_VERSION                    the on-board agent (one dependency-free script)
    agent_argv(profile) -> list[str]             the agent's one command line for a profile
    measure_release(transport, board, profile, release_id=None) -> dict
    parse_agent_output(stdout, board_name) -> dict   (validated against core.contracts)
    check_health(transport, board, profile, shipped)  smoke run after a switch, rollback on failure
    profiler.report / .history / .html_report    the report document, history, HTML with plots

"Profile" means the device profile (``profiles``) only; measuring is this package's word.
Importing it stays light: the agent's runtimes are only imported on the board.
"""

from .agent import AGENT_PATH, AGENT_VERSION
from .health import check_health
from .measure import agent_argv, measure_release, parse_agent_output

__all__ = ["AGENT_PATH", "AGENT_VERSION", "agent_argv", "check_health", "measure_release",
           "parse_agent_output"]

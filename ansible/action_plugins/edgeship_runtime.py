"""Action ``edgeship_runtime``: ensure the board's runtime venv, offline, with edgeship's code.

Runs on the controller (an action plugin) and calls :func:`runtimes.provision.ensure_runtime`
over this host's Ansible connection: probe the board (CPU, Python, glibc, free disk), fill the
host-side wheelhouse that fits it (``pip download`` once per platform, cached), upload only the
wheels the board lacks and install them into ``<edgeship_root>/venv`` with ``--no-index``.
Idempotent: an up-to-date venv sends and installs nothing.

Returns ``python`` (the venv's interpreter, for the later steps).
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    """``- edgeship_runtime:`` (no arguments; the host's ``edgeship_*`` vars say where)."""

    TRANSFERS_FILES = True
    _VALID_ARGS = frozenset()

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        from core.errors import EdgeshipError
        from edgeship._ansible_transport import AnsibleTransport, board_from_vars, failure
        from runtimes.provision import ensure_runtime

        board = board_from_vars(task_vars or {})
        try:
            python = ensure_runtime(AnsibleTransport(self._connection, board), board)
        except EdgeshipError as exc:
            return {**result, **failure(exc)}
        return {**result, "changed": False, "python": python}

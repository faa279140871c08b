"""Action ``edgeship_release``: ship a bundle as a verified release, switch ``current``, probe it.

Runs on the controller (an action plugin) and calls edgeship's own release code over this
host's Ansible connection (:class:`edgeship._ansible_transport.AnsibleTransport`):

* :func:`runtimes.ship.ship_bundle` — board lock, upload into ``releases/.<id>.partial``
  (resumable, identical files hard-linked from other releases), sha256 of every file measured
  on the board against ``manifest.json``, atomic ``current`` switch (``ln -sfn`` + ``mv -T``),
  ``previous`` kept, older releases pruned beyond ``keep``;
* :func:`profiler.health.check_health` — a smoke run of the release's agent, rollback to
  ``previous`` when it fails.

Returns ``ship`` (the ``ShipResult`` fields, as in a built-in deploy's report), ``smoke`` (the
agent's smoke document when the probe failed), and ``agent_argv`` / ``result_file``: the agent
command line for the full profiling run and where on the board its JSON goes (the playbook runs
it with ``ansible.builtin.shell`` and brings it back with ``ansible.builtin.fetch``).
"""

from __future__ import annotations

import dataclasses

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    """``- edgeship_release: {bundle: DIR, python: BOARD_PYTHON, keep: 3}``."""

    TRANSFERS_FILES = True
    _VALID_ARGS = frozenset(("bundle", "python", "keep"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        from core.errors import EdgeshipError
        from edgeship._ansible_transport import AnsibleTransport, board_from_vars, failure
        from profiler.health import check_health
        from profiler.measure import agent_command
        from profiles import load_profile
        from runtimes.ship import ship_bundle

        args = self._task.args
        board = board_from_vars(task_vars or {})
        board = board.model_copy(update={"python": str(args.get("python") or board.python)})
        try:
            profile = load_profile(board.profile)
            with AnsibleTransport(self._connection, board) as transport:
                shipped = ship_bundle(transport, board, args["bundle"], keep=int(args.get("keep", 3)))
                shipped, smoke = check_health(transport, board, profile, shipped)
        except EdgeshipError as exc:
            return {**result, **failure(exc)}
        root = board.root.rstrip("/") or "/"
        healthy = bool(shipped.health and shipped.health["ok"])
        return {**result, "changed": shipped.switched or not shipped.reused,
                "ship": dataclasses.asdict(shipped), "healthy": healthy,
                "smoke": None if healthy else smoke,
                "agent_argv": agent_command(board, profile, shipped.release_id),
                "result_file": f"{root}/.agent-{shipped.release_id}.json"}

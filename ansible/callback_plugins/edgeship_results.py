"""Callback ``edgeship_results``: one record per host for ``edgeship deploy --engine ansible``.

Writes ``$EDGESHIP_ANSIBLE_RESULTS`` (JSON) when the playbook ends::

    {"hosts": {"<host>": {"started": t, "ended": t, "python": …, "release": {…edgeship_release…},
                          "fetched": "<controller path>", "skipped_agent": bool,
                          "failed": null | {"task", "msg", "rc", "stderr", "unreachable"}}}}

A host absent from the file never ran a task (the play stopped first: ``max_fail_percentage``).
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: edgeship_results
type: aggregate
short_description: per-host results of the edgeship deploy playbook, as JSON
description: writes every host's step results and first failure to $EDGESHIP_ANSIBLE_RESULTS
requirements: [enable in callbacks_enabled]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "edgeship_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hosts = {}

    def _entry(self, host):
        return self.hosts.setdefault(host, {"started": time.time(), "ended": None,
                                            "failed": None, "skipped_agent": False})

    def v2_runner_on_start(self, host, task):
        self._entry(host.get_name())

    def v2_runner_on_ok(self, result):
        entry = self._entry(result._host.get_name())
        entry["ended"] = time.time()
        action, res = result._task.action, result._result
        if action.endswith("edgeship_runtime"):
            entry["python"] = res.get("python")
        elif action.endswith("edgeship_release"):
            entry["release"] = {k: res.get(k) for k in ("ship", "healthy", "smoke", "result_file")}
        elif action.endswith("fetch"):
            entry["fetched"] = res.get("dest")

    def v2_runner_on_skipped(self, result):
        entry = self._entry(result._host.get_name())
        entry["ended"] = time.time()
        entry["skipped_agent"] = True

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._failed(result, unreachable=False)

    def v2_runner_on_unreachable(self, result):
        self._failed(result, unreachable=True)

    def _failed(self, result, *, unreachable):
        entry = self._entry(result._host.get_name())
        entry["ended"] = time.time()
        res = result._result
        if entry["failed"] is None:
            entry["failed"] = {"task": result._task.get_name(), "action": result._task.action,
                               "msg": " ".join(str(res.get("msg", "")).split()),
                               "rc": res.get("rc"), "stderr": str(res.get("stderr", ""))[-2000:],
                               "unreachable": unreachable}

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("EDGESHIP_ANSIBLE_RESULTS")
        if not path:
            return
        tmp = f"{path}.tmp"
        with open(tmp, "w") as fh:
            json.dump({"hosts": self.hosts}, fh, indent=1, default=str)
        os.replace(tmp, path)

"""The Ansible engine without boards: the inventory is Ansible's too, the runtime inventory,
option checks, failure reasons, and the CLI routing ``--engine ansible``.

Needs ansible-core (the ``ansible`` extra); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from core.errors import ConfigError
from devices import INVENTORY_FILE, Board, load_inventory
from edgeship.ansible_engine import (
    AnsibleOptions,
    ansible_playbook,
    ansible_unavailable_reason,
    runtime_inventory,
)

_REASON = ansible_unavailable_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"ansible: {_REASON}")


def _inventory_list(path: Path) -> dict:
    tool = Path(str(ansible_playbook())).with_name("ansible-inventory")
    proc = subprocess.run([str(tool), "-i", str(path), "--list"], capture_output=True, text=True,
                          timeout=60, env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
                                           "PATH": "/usr/bin:/bin", "HOME": str(path.parent)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_device_inventory_is_an_ansible_inventory(tmp_path: Path) -> None:
    listed = _inventory_list(INVENTORY_FILE)
    ours = load_inventory()
    for group in ("simulated", "emulated", "simfleet", "pis", "jetsons"):
        assert sorted(listed[group]["hosts"]) == sorted(ours.groups[group])
    hostvars = listed["_meta"]["hostvars"]
    assert set(hostvars) == set(ours.boards)
    assert hostvars["pi"]["ansible_user"] == "pi" and hostvars["pi"]["edgeship_profile"] == "rpi4"
    assert hostvars["sim-c"]["ansible_host"] == "10.213.7.13"
    assert hostvars["sim-c"]["edgeship_profile"] == "sim"  # group vars reach the hosts
    assert all(v["edgeship_root"] == ".edgeship" for v in hostvars.values())  # all.vars too


def test_runtime_inventory_carries_every_connection_var(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    boards = [Board(name="a", host="10.213.9.10", port=22, user="root", key_file="/k/id",
                    profile="sim", root="/r/a", simulated=True),
              Board(name="b", host="pi.local", profile="rpi4")]
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(runtime_inventory(boards, known)))
    listed = _inventory_list(path)
    assert sorted(listed["edgeship_targets"]["hosts"]) == ["a", "b"]
    a = listed["_meta"]["hostvars"]["a"]
    assert a["ansible_host"] == "10.213.9.10" and a["ansible_port"] == 22
    assert a["ansible_user"] == "root" and a["ansible_ssh_private_key_file"] == "/k/id"
    assert a["ansible_ssh_common_args"] == (f"-o UserKnownHostsFile={known} "
                                            "-o StrictHostKeyChecking=yes")
    assert a["ansible_python_interpreter"] == "/usr/bin/python3"
    assert (a["edgeship_profile"], a["edgeship_root"]) == ("sim", "/r/a")
    b = listed["_meta"]["hostvars"]["b"]
    assert "ansible_user" not in b and b["ansible_python_interpreter"] == "auto_silent"


@pytest.mark.parametrize("kwargs", [{"forks": 0}, {"serial": -1}, {"max_fail_percentage": 101}])
def test_bad_ansible_options_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="--forks must be >= 1"):
        AnsibleOptions(**kwargs)


def test_failure_reasons_are_one_line_and_say_what_failed() -> None:
    from edgeship._ansible_collect import collect, failure_reason

    board = Board(name="b1", host="10.213.9.11", profile="sim")
    hung = failure_reason(board, {"action": "ansible.builtin.shell", "rc": 124})
    assert "did not finish" in hung and "profiling.timeout_s" in hung
    crashed = failure_reason(board, {"action": "ansible.builtin.shell", "rc": 1,
                                     "stderr": "Traceback\nImportError: onnxruntime"})
    assert crashed.startswith("agent on board 'b1' exited 1: ImportError: onnxruntime")
    ship = failure_reason(board, {"action": "edgeship_release", "task": "Ship",
                                  "msg": "board 'b1': disk full"})
    assert ship == "board 'b1': disk full"
    opts = SimpleNamespace(max_fail=20)
    never = collect(board, {"hosts": {}}, None, None, opts)  # type: ignore[arg-type]
    assert not never.ok and "max_fail_percentage" in never.reason and "20%" in never.reason


def _grp(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("all:\n  children:\n    grp:\n      hosts:\n"
                         "        a: {edgeship_profile: sim}\n        b: {edgeship_profile: sim}\n")
    return inventory


def test_cli_sends_engine_ansible_with_its_options(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from edgeship.cli import _fleet, app

    seen: dict = {}
    monkeypatch.setattr(_fleet, "deploy_group", lambda device, *a, **kw: seen.update(device=device, **kw))
    result = CliRunner().invoke(app, ["deploy", "--device", "a", "--model", "m.onnx", "--inventory",
                                      str(_grp(tmp_path)), "--engine", "ansible", "--serial", "2",
                                      "--max-fail-percentage", "30", "--parallel", "3"])
    assert result.exit_code == 0, result.output
    opts = seen["ansible"]
    assert seen["device"] == "a"  # one board through Ansible is a fleet of one
    assert (opts.forks, opts.serial, opts.max_fail) == (3, 2, 30)


def test_ansible_options_with_the_builtin_engine_are_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgeship.cli import app

    result = CliRunner().invoke(app, ["deploy", "--device", "grp", "--model", "m.onnx",
                                      "--inventory", str(_grp(tmp_path)), "--forks", "8"])
    assert isinstance(result.exception, ConfigError)  # the CLI's main() maps it to exit 2
    assert "apply to --engine ansible" in str(result.exception)

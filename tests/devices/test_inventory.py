"""Inventory loading: Ansible-style inheritance, did-you-mean, clear errors."""

from pathlib import Path

import pytest

from core.errors import ConfigError, UnknownNameError
from devices import load_inventory


def test_shipped_inventory() -> None:
    inv = load_inventory()
    assert {"sim", "pi", "jetson"} <= set(inv.boards)
    assert inv.board("sim").simulated and inv.board("sim").profile == "sim"
    assert inv.board("pi").profile == "rpi4" and inv.board("pi").user == "pi"
    assert inv.board("jetson").profile == "jetson-orin-nano"
    assert inv.board("pi").root == ".edgeship"  # from all.vars


def test_did_you_mean() -> None:
    inv = load_inventory()
    with pytest.raises(UnknownNameError, match="unknown device 'jetsn'; did you mean 'jetson'"):
        inv.resolve("jetsn")


def test_groups_and_inheritance(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(
        "all:\n  vars: {edgeship_profile: rpi4, ansible_user: pi}\n  children:\n"
        "    lab:\n      vars: {ansible_port: 2200}\n      children:\n"
        "        shelf:\n          hosts:\n            a: {ansible_host: 10.0.0.1}\n"
        "            b: {ansible_host: 10.0.0.2, ansible_user: ops}\n"
    )
    inv = load_inventory(path)
    assert [b.name for b in inv.resolve("lab")] == ["a", "b"]
    a, b = inv.board("a"), inv.board("b")
    assert (a.port, a.user, b.user) == (2200, "pi", "ops")
    assert set(a.groups) == {"lab", "shelf"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all:\n  hosts:\n    x: {edgeship_profil: rpi4}\n", "did you mean 'edgeship_profile'"),
        ("all:\n  hosts:\n    x: {ansible_host: h}\n", "has no edgeship_profile"),
        ("all:\n  hostz: {}\n", "unknown key 'hostz'"),
        ("all:\n  hosts:\n    x: {edgeship_profile: rpi4, ansible_port: 99999}\n", "field 'port'"),
        ("nope: 1\n", "'all' group"),
    ],
)
def test_bad_inventory(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_inventory(path)


def test_missing_inventory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_inventory(tmp_path / "none.yaml")

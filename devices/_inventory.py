"""Load the board inventory (Ansible-style YAML) into :class:`Board` objects.

Variables inherit down the tree: ``all.vars`` → group ``vars`` → child groups → host entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import ConfigError, UnknownNameError

__all__ = ["Board", "Inventory", "INVENTORY_FILE", "load_inventory"]

INVENTORY_FILE = Path(__file__).resolve().parent / "inventory.yaml"

# inventory variable → Board field
_VARS = {
    "ansible_host": "host",
    "ansible_port": "port",
    "ansible_user": "user",
    "ansible_ssh_private_key_file": "key_file",
    "edgeship_profile": "profile",
    "edgeship_root": "root",
    "edgeship_python": "python",
    "edgeship_simulated": "simulated",
    "edgeship_ort_wheel": "ort_wheel",
    "edgeship_ort_index": "ort_index",
    "edgeship_sysroot": "sysroot",
}
_IGNORED_PREFIXES = ("ansible_",)  # other Ansible variables are Ansible's business


class Board(BaseModel):
    """One board: where to reach it and which profile it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    host: str
    port: int = Field(default=22, ge=1, le=65535)
    user: str | None = None
    key_file: str | None = None
    profile: str
    root: str = ".edgeship"
    python: str = "python3"
    simulated: bool = False
    groups: tuple[str, ...] = ()
    ort_wheel: str | None = Field(default=None, pattern=r"\.whl$",
                                  description="host path of an onnxruntime(-gpu) wheel for this board")
    ort_index: str | None = Field(default=None, pattern=r"^(https?|file)://\S+$",
                                  description="package index with onnxruntime-gpu for this board")
    sysroot: str | None = Field(default=None, description="simulation only: a directory standing "
                                "in for / when reading JetPack facts (nv_tegra_release, dpkg)")

    @model_validator(mode="after")
    def _one_ort_source(self) -> "Board":
        if self.ort_wheel and self.ort_index:
            raise ValueError("set edgeship_ort_wheel or edgeship_ort_index, not both")
        return self


class Inventory(BaseModel):
    """All boards and groups of one inventory file."""

    model_config = ConfigDict(frozen=True)

    path: Path
    boards: dict[str, Board]
    groups: dict[str, tuple[str, ...]]

    def board(self, name: str) -> Board:
        """The board called *name*; unknown names get a "did you mean"."""
        if name not in self.boards:
            raise UnknownNameError(
                "device", name, list(self.boards) + list(self.groups),
                hint=f"boards are listed in {self.path}",
            )
        return self.boards[name]

    def resolve(self, name: str) -> list[Board]:
        """A board name → that board; a group name → all its boards."""
        if name in self.groups:
            return [self.boards[b] for b in self.groups[name]]
        return [self.board(name)]


def load_inventory(path: Path | None = None) -> Inventory:
    """Parse the inventory at *path* (default ``devices/inventory.yaml``)."""
    path = Path(path or INVENTORY_FILE)
    if not path.exists():
        raise ConfigError(f"inventory {path} does not exist; copy devices/inventory.yaml and edit it")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(doc, dict) or "all" not in doc:
        raise ConfigError(f"{path}: the top level must be a mapping with an 'all' group")
    hosts: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {}
    _walk(path, "all", doc["all"] or {}, {}, [], hosts, groups)
    boards = {name: _board(path, name, data) for name, data in hosts.items()}
    return Inventory(path=path, boards=boards, groups={g: tuple(m) for g, m in groups.items()})


def _walk(path: Path, group: str, node: dict[str, Any], inherited: dict[str, Any],
          lineage: list[str], hosts: dict[str, dict[str, Any]], groups: dict[str, list[str]]) -> None:
    if not isinstance(node, dict):
        raise ConfigError(f"{path}: group {group!r} must be a mapping (hosts/vars/children)")
    unknown = set(node) - {"hosts", "vars", "children"}
    if unknown:
        raise ConfigError(f"{path}: group {group!r} has unknown key {sorted(unknown)[0]!r}; "
                          "allowed: hosts, vars, children")
    scope = {**inherited, **(node.get("vars") or {})}
    here = [*lineage, group]
    members = groups.setdefault(group, [])
    for host, hvars in (node.get("hosts") or {}).items():
        entry = hosts.setdefault(host, {"groups": []})
        entry.update({**scope, **(hvars or {})})
        entry["groups"] = sorted(set(entry["groups"]) | set(here))
        members.append(host)
    for child, sub in (node.get("children") or {}).items():
        _walk(path, child, sub or {}, scope, here, hosts, groups)
        members.extend(h for h in groups[child] if h not in members)


def _board(path: Path, name: str, data: dict[str, Any]) -> Board:
    fields: dict[str, Any] = {"name": name, "groups": tuple(g for g in data.pop("groups") if g != "all")}
    for key, value in data.items():
        if key in _VARS:
            fields[_VARS[key]] = value
        elif not key.startswith(_IGNORED_PREFIXES):
            raise UnknownNameError(f"variable on host {name!r} in {path}:", key,
                                   [k for k in _VARS if k.startswith("edgeship_")])
    fields.setdefault("host", "127.0.0.1" if fields.get("simulated") else name)
    if "profile" not in fields:
        raise ConfigError(f"{path}: host {name!r} has no edgeship_profile; add one (see profiles/)")
    try:
        return Board.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: host {name!r} field {field!r}: {err['msg']}") from exc

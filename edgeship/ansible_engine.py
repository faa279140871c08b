"""Fleet deploys on Ansible: ``edgeship deploy --device GROUP --engine ansible``.

The model is converted on the controller once per profile (as the built-in engine does); then
``ansible-playbook ansible/deploy.yml`` runs the ship and profile stages on every board with
Ansible's ``forks``, ``serial`` and ``max_fail_percentage``. The playbook's steps are edgeship's
own code (action plugins over Ansible's connection), the agent's JSON comes back with
``fetch``, and this module parses it with :func:`profiler.measure.parse_agent_output` and builds
the same per-board reports and the same fleet document as :func:`edgeship.fleet.deploy_fleet`.

Simulated boards are started here first; Ansible reaches every board through a *runtime*
inventory generated from edgeship's resolved boards (the user's inventory is never edited).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import ConfigError, EdgeshipError, ShipError
from core.paths import Paths, default_paths
from devices import Board, Inventory, load_inventory
from edgeship.fleet import BoardResult, FleetOutcome, save_fleet_report

__all__ = ["ANSIBLE_DIR", "PLAYBOOK", "AnsibleOptions", "ansible_playbook",
           "ansible_unavailable_reason", "deploy_fleet_ansible", "runtime_inventory"]

log = logging.getLogger(__name__)

ANSIBLE_DIR = Path(__file__).resolve().parent.parent / "ansible"
PLAYBOOK = ANSIBLE_DIR / "deploy.yml"
GROUP = "edgeship_targets"
Progress = Callable[[str], None]


class AnsibleOptions:
    """``--forks``, ``--serial`` (0: all boards in one batch), ``--max-fail-percentage``."""

    def __init__(self, forks: int = 4, serial: int = 0, max_fail_percentage: int = 100,
                 keep: int = 3) -> None:
        if forks < 1 or serial < 0 or not 0 <= max_fail_percentage <= 100 or keep < 1:
            raise ConfigError(f"--forks must be >= 1, --serial >= 0 and --max-fail-percentage "
                              f"0..100 (got {forks}, {serial}, {max_fail_percentage})")
        self.forks, self.serial, self.max_fail = forks, serial, max_fail_percentage
        self.keep = keep


def ansible_playbook() -> str | None:
    """The ``ansible-playbook`` beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.exists() else shutil.which("ansible-playbook")


def ansible_unavailable_reason() -> str | None:
    """Why the Ansible engine cannot run here (``None`` when it can)."""
    try:
        import ansible  # noqa: F401
    except ImportError:
        return ("ansible-core is not installed; install it with "
                "`.venv/bin/pip install -c constraints.txt -e '.[ansible]'`")
    if ansible_playbook() is None:
        return "ansible-playbook is not on PATH; reinstall ansible-core into the venv"
    return None


def runtime_inventory(boards: list[Board], known_hosts: Path) -> dict[str, Any]:
    """An Ansible inventory for *boards* as edgeship resolved them (simulated ones running)."""
    strict = f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"
    hosts: dict[str, dict[str, Any]] = {}
    for b in boards:
        entry: dict[str, Any] = {
            "ansible_host": b.host, "ansible_port": b.port, "ansible_ssh_common_args": strict,
            "ansible_python_interpreter": _system_python(b), "edgeship_profile": b.profile,
            "edgeship_root": b.root, "edgeship_python": b.python,
        }
        if b.user:
            entry["ansible_user"] = b.user
        if b.key_file:
            entry["ansible_ssh_private_key_file"] = str(Path(b.key_file).expanduser())
        hosts[b.name] = entry
    return {"all": {"children": {GROUP: {"hosts": hosts}}}}


def _system_python(board: Board) -> str:
    """The board's system python3 for Ansible's own modules (not edgeship's runtime venv)."""
    if board.simulated:
        from runtimes.sim.simboard import SYSTEM_PYTHON

        return SYSTEM_PYTHON
    return board.python if board.python.startswith("/") and "/venv/" not in board.python \
        else "auto_silent"


def deploy_fleet_ansible(device: str, model: str, data: str | None, *,
                         paths: Paths | None = None, inventory: Inventory | None = None,
                         options: AnsibleOptions | None = None, progress: Progress = lambda _: None,
                         force: bool = False,
                         input_shapes: dict[str, tuple[int, ...]] | None = None) -> FleetOutcome:
    """Convert once per profile, run the playbook on every board of *device*, report per board.

    Saves each board's report as a single deploy would, and the fleet document (with
    ``"engine": "ansible"``) under ``reports/<device>/<timestamp>/report.json``.
    """
    from profiler.report import build_fleet_report

    reason = ansible_unavailable_reason()
    if reason:
        raise ConfigError(f"--engine ansible: {reason}")
    paths, options = paths or default_paths(), options or AnsibleOptions()
    boards = (inventory or load_inventory()).resolve(device)
    built = _convert_all(device, model, data, boards, paths, progress, force, input_shapes)
    started = time.perf_counter()  # like the built-in engine: deploy time, not conversion
    early: dict[str, BoardResult[Any]] = {}
    targets = _start_boards(boards, built, paths, progress, early)
    records = _run_playbook(device, targets, built, paths, options, progress) if targets else {}
    from edgeship._ansible_collect import collect

    results = [early.get(b.name) or collect(targets[b.name], records, built[b.profile], paths,
                                            options)
               for b in boards]
    report = build_fleet_report(device=device, boards=boards, results=results,
                                parallel=options.forks, seconds=time.perf_counter() - started)
    report.update(engine="ansible", serial=options.serial,
                  max_fail_percentage=options.max_fail)
    return FleetOutcome(report, save_fleet_report(report, results, paths.reports), results)


def _convert_all(device: str, model: str, data: str | None, boards: list[Board], paths: Paths,
                 progress: Progress, force: bool,
                 input_shapes: dict[str, tuple[int, ...]] | None) -> dict[str, Any]:
    """Profile name → ``(Profile, Bundle)``, or the one-line reason its conversion failed."""
    from edgeship.deploy import convert

    built: dict[str, Any] = {}
    for name in dict.fromkeys(b.profile for b in boards):
        progress(f"converting for profile {name} ({sum(b.profile == name for b in boards)} boards)")
        try:
            built[name] = convert(device, model, data, paths=paths, profile=name,
                                  progress=progress, force=force, input_shapes=input_shapes)
        except EdgeshipError as exc:
            built[name] = f"conversion failed: {' '.join(str(exc).split())}"
    return built


def _start_boards(boards: list[Board], built: dict[str, Any], paths: Paths, progress: Progress,
                  early: dict[str, BoardResult[Any]]) -> dict[str, Board]:
    """Running boards by name; a board whose bundle or simulator failed goes to *early*."""
    from edgeship.deploy import start_board

    targets: dict[str, Board] = {}
    for b in boards:
        t0 = time.perf_counter()
        if isinstance(built[b.profile], str):
            early[b.name] = BoardResult(b.name, False, None, built[b.profile], 0.0)
            continue
        try:
            targets[b.name] = start_board(b, paths, progress)
        except EdgeshipError as exc:
            early[b.name] = BoardResult(b.name, False, None, " ".join(str(exc).split()),
                                        time.perf_counter() - t0)
    return targets


def _run_playbook(device: str, targets: dict[str, Board], built: dict[str, Any], paths: Paths,
                  options: AnsibleOptions, progress: Progress) -> dict[str, Any]:
    """Write the runtime inventory and extra vars, run ansible-playbook, return host records."""
    import tempfile

    import yaml

    (paths.home / "ansible").mkdir(parents=True, exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=paths.home / "ansible"))
    (run / "results").mkdir()
    inv = run / "inventory.yml"
    inv.write_text(yaml.safe_dump(runtime_inventory(list(targets.values()), paths.known_hosts)))
    extra = {"edgeship_hosts": GROUP, "edgeship_keep": options.keep,
             "edgeship_serial": options.serial, "edgeship_max_fail_percentage": options.max_fail,
             "edgeship_results_dir": str(run / "results"),
             "edgeship_bundles": {b.profile: str(built[b.profile][1].path)
                                  for b in targets.values()}}
    (run / "extra-vars.json").write_text(json.dumps(extra, indent=1))
    argv = [str(ansible_playbook()), "-i", str(inv), "-f", str(options.forks),
            "-e", f"@{run / 'extra-vars.json'}", str(PLAYBOOK)]
    progress(f"ansible-playbook on {len(targets)} boards of {device!r}: forks {options.forks}, "
             f"serial {options.serial or 'all'}, max_fail_percentage {options.max_fail}")
    control = Path(tempfile.mkdtemp(prefix="es-cp-"))  # short: unix socket paths are limited
    try:
        tail = _stream(argv, {**_env(run, paths), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control)},
                       progress)
    finally:
        _close_masters(control)
    results = run / "results.json"
    if not results.exists():
        raise ShipError(f"ansible-playbook ended without results ({' / '.join(tail[-3:])}); "
                        f"see {run} and rerun with EDGESHIP_DEBUG=1")
    doc = json.loads(results.read_text())
    return {"run": str(run), "hosts": doc["hosts"]}


def _close_masters(control: Path) -> None:
    """Stop this run's ssh ControlPersist masters (a later run must not ride on them)."""
    for sock in control.iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "edgeship-board"],
                       capture_output=True, timeout=10, check=False)
    shutil.rmtree(control, ignore_errors=True)


def _env(run: Path, paths: Paths) -> dict[str, str]:
    return {**os.environ, "EDGESHIP_ANSIBLE_RESULTS": str(run / "results.json"),
            "EDGESHIP_HOME": str(paths.home),
            "ANSIBLE_CALLBACK_PLUGINS": str(ANSIBLE_DIR / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "edgeship_results",
            "ANSIBLE_ACTION_PLUGINS": str(ANSIBLE_DIR / "action_plugins"),
            "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_PIPELINING": "True", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_TIMEOUT": "10",
            "ANSIBLE_LOCAL_TEMP": str(run / "tmp"), "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "False"}


def _stream(argv: list[str], env: dict[str, str], progress: Progress) -> list[str]:
    """Run *argv*, each non-empty output line to *progress*; returns the last lines."""
    tail: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, cwd=ANSIBLE_DIR) as proc:
        for line in proc.stdout or ():
            text = line.rstrip().rstrip("*").rstrip()
            if text:
                progress(f"ansible: {text}")
                tail = [*tail[-29:], text]
    log.info("ansible-playbook exited %s", proc.returncode)
    return tail

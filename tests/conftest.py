"""Fixtures: one simulated board (a real sshd on loopback) per session, provisioned once.

The developer's own ``~/.ssh`` stays out: transports get ``look_for_keys=False``,
``allow_agent=False`` and ``system_host_keys=False``, and only the board's own key.
Wheels come from the shared host cache (``~/.cache/edgeship/wheelhouse`` or
``$EDGESHIP_WHEELHOUSE``), so they are downloaded once per machine.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "kits"))  # rt_kit, jetson_kit, arm64_kit

from rt_kit import finish_tiny_models, make_bundle, open_transport, start_tiny_models

from core.paths import Paths  # noqa: E402
from devices import Board  # noqa: E402
from runtimes import SimBoard, SSHTransport, ensure_runtime  # noqa: E402

_ids = itertools.count(1)


@pytest.fixture(scope="session")
def sim_paths(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    return Paths(home=tmp_path_factory.mktemp("edgeship-home"))


@pytest.fixture(scope="session")
def sim(sim_paths: Paths) -> Iterator[SimBoard]:
    board = SimBoard(sim_paths, "sim")
    board.up()
    yield board
    board.down()


@pytest.fixture(scope="session")
def model_build(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """The tiny models, building in the background (tensorflow takes seconds to import)."""
    out = tmp_path_factory.mktemp("models")
    proc = start_tiny_models(out)
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def provisioned(
    sim: SimBoard, sim_paths: Paths, model_build: tuple[subprocess.Popen[bytes], Path]
) -> Board:
    """The session board with its runtime venv installed (python = the venv's).

    Depends on ``model_build`` only to start the model build first, so the two overlap.
    """
    with open_transport(sim.board(), sim_paths) as transport:
        ensure_runtime(transport, sim.board())
    return sim.board()


@pytest.fixture
def board(provisioned: Board, tmp_path: Path) -> Board:
    """The provisioned board with a fresh root of its own for this test."""
    root = tmp_path / "board-root"
    root.mkdir()
    return provisioned.model_copy(update={"root": str(root)})


@pytest.fixture
def transport(board: Board, sim_paths: Paths) -> Iterator[SSHTransport]:
    with open_transport(board, sim_paths) as tr:
        yield tr


@pytest.fixture(scope="session")
def models(model_build: tuple[subprocess.Popen[bytes], Path]) -> Path:
    return finish_tiny_models(*model_build)


@pytest.fixture
def new_bundle(models: Path, tmp_path: Path) -> Callable[..., Path]:
    """``new_bundle(**kwargs)`` → a fresh bundle directory with a unique id."""

    def make(**kwargs: object) -> Path:
        bundle_id = f"b{next(_ids):015x}"
        return make_bundle(models, tmp_path / "bundles", bundle_id, **kwargs)  # type: ignore[arg-type]

    return make

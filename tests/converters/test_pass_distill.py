"""distill: the KD loss falls, and the distilled student beats the same student without a teacher."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pass_kit  # noqa: E402

from converters.passes import apply_recipe  # noqa: E402
from core.errors import ConfigError  # noqa: E402
from profiles import RecipeStep  # noqa: E402

_threads = pytest.fixture(autouse=True, scope="module")(pass_kit.one_thread)
FEW_LABELS = 300


def _distill(data, **options):
    results: list[dict] = []
    student = apply_recipe(pass_kit.trained_cnn(), [RecipeStep(name="distill", options=options)],
                           data, results)
    return student, results[0]["result"]


def test_distilled_student_beats_the_same_student_without_teacher() -> None:
    """Same narrowed student (width 0.5, from the teacher's weights), seeds, epochs; α=0 = no teacher."""
    data = pass_kit.dataset(train=FEW_LABELS)
    common = {"width": 0.5, "epochs": 4, "lr": 3e-3, "temperature": 2.0}
    kd, plain = [], []
    for seed in (0, 1):
        student, result = _distill(data, alpha=0.9, seed=seed, **common)
        assert result["kd_loss_after"] < 0.5 * result["kd_loss_before"]
        assert result["student_parameters"] < 0.3 * result["teacher_parameters"]
        assert result["student_accuracy"] == pytest.approx(pass_kit.accuracy(student, data), abs=1e-3)
        kd.append(result["student_accuracy"])
        plain.append(_distill(data, alpha=0.0, seed=seed, **common)[1]["student_accuracy"])
    assert sum(kd) / 2 > sum(plain) / 2 + 0.01, (kd, plain)


def test_embedding_mode_needs_no_labels_and_matches_outputs() -> None:
    import torch

    from converters.data import Dataset

    d = pass_kit.digits()
    data = Dataset({"input": d["xe"]}, None, ref="test", train={"input": d["x"][:FEW_LABELS]})
    student, result = _distill(data, mode="embedding", width=0.5, epochs=2, lr=3e-3)
    assert result["kd_loss_after"] < result["kd_loss_before"]
    x = torch.from_numpy(d["xe"][:64])
    with torch.no_grad():
        cos = torch.nn.functional.cosine_similarity(student(x), pass_kit.trained_cnn()(x)).mean()
    assert float(cos) > 0.9


def test_student_with_other_outputs_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pass_students.py").write_text(
        "import torch\n\ndef wrong():\n    return torch.nn.Sequential(torch.nn.Flatten(), "
        "torch.nn.Linear(784, 3))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"student's output shape \[3\] differs .* \[10\]"):
        _distill(pass_kit.dataset(train=64), student="pass_students:wrong", epochs=1)

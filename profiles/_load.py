"""Find and parse profile YAML files into :class:`~profiles.schema.Profile` objects."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from core.errors import ConfigError, UnknownNameError

from .schema import Profile

__all__ = ["PROFILE_DIR", "available_profiles", "load_profile", "load_profile_file"]

PROFILE_DIR = Path(__file__).resolve().parent


def available_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    """Names of the profiles shipped in *directory* (file stem = profile name)."""
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name_or_path: str, directory: Path = PROFILE_DIR) -> Profile:
    """Load a profile by name (``rpi4``) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_profile_file(path)
    candidate = directory / f"{name_or_path}.yaml"
    if not candidate.exists():
        raise UnknownNameError("profile", name_or_path, available_profiles(directory))
    return load_profile_file(candidate)


def load_profile_file(path: Path) -> Profile:
    """Parse one profile file; errors name the file, the field and what is allowed."""
    if not path.exists():
        raise ConfigError(f"profile file {path} does not exist; check the path")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({_one_line(exc)})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from exc


def describe_validation_error(exc: ValidationError) -> str:
    """One line for the first problem pydantic found: ``field: message``."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown field {field!r}; remove it or check its spelling"
    msg = err["msg"]
    if err["type"] == "literal_error":
        msg = msg.replace("Input should be", "must be one of")
    return f"field {field!r}: {msg} (got {err.get('input')!r})"


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())

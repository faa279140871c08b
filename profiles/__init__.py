"""Device profiles: one YAML per board class, validated by :mod:`profiles.schema`."""

from ._load import PROFILE_DIR, available_profiles, load_profile, load_profile_file
from .schema import (
    FORMATS,
    PRECISIONS,
    Artifact,
    Budgets,
    Fidelity,
    Profile,
    ProfilingOptions,
    RecipeStep,
    RuntimeOptions,
)

__all__ = [
    "FORMATS",
    "PRECISIONS",
    "PROFILE_DIR",
    "Artifact",
    "Budgets",
    "Fidelity",
    "Profile",
    "ProfilingOptions",
    "RecipeStep",
    "RuntimeOptions",
    "available_profiles",
    "load_profile",
    "load_profile_file",
]

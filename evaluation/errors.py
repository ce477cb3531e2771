"""Failures of an evaluation that the user can fix, and the optional dependencies it needs."""

from __future__ import annotations

import importlib
from types import ModuleType

from diffc.errors import DiffcError


class EvaluationError(DiffcError):
    """A failure caused by the data, the settings or the environment, with a message that says what to do."""


def require(module: str) -> ModuleType:
    """Import an optional dependency of ``diffc[eval]``, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EvaluationError(f"{module} is not installed; diffc eval needs it: pip install 'diffc[eval]'") from exc

"""Shared by every test: compiled programs go to one temporary cache for the session, never to the
user's own cache folder (JAX keeps the first folder a process enables); and the one way a test finds
the Kodak images.

Kodak: a test that needs the real Kodak images (kodim01.png ... kodim24.png) takes the ``kodak``
fixture, which reads the folder from ``$DIFFC_KODAK`` (default: ``../shared/data/kodak`` beside
the repository) and skips the test, saying where it looked, when the folder is missing. No test
replaces Kodak with other images when it is missing; a test that needs only some real photo uses
the one shipped in the package (``diffc.samples``).
"""

from pathlib import Path

import pytest

from diffc.runtime.compilation_cache import ENV, enable_compilation_cache
from helpers import require_kodak


@pytest.fixture(scope="session", autouse=True)
def compile_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV, str(tmp_path_factory.getbasetemp() / "jax-cache"))
        enable_compilation_cache()
        yield


@pytest.fixture(scope="session")
def kodak() -> Path:
    """The Kodak folder; the test is skipped, with the reason, when it lacks kodim01 ... kodim24."""
    return require_kodak()

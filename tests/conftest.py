"""Shared by every test: compiled programs go to one temporary cache for the session, never to the
user's own cache folder (JAX keeps the first folder a process enables)."""

import pytest

from diffc.runtime.compilation_cache import ENV, enable_compilation_cache


@pytest.fixture(scope="session", autouse=True)
def compile_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV, str(tmp_path_factory.getbasetemp() / "jax-cache"))
        enable_compilation_cache()
        yield

"""The malloc arena cap (churn_pipeline.memory): read from the environment, refused when malformed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from churn_pipeline.memory import ARENA_MAX_ENV, arena_max_from_env, limit_malloc_arenas


def test_the_arena_cap_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(ARENA_MAX_ENV, raising=False)
    assert arena_max_from_env() == 2
    monkeypatch.setenv(ARENA_MAX_ENV, "4")
    assert arena_max_from_env() == 4
    monkeypatch.setenv(ARENA_MAX_ENV, "0")
    assert arena_max_from_env() == 0 and limit_malloc_arenas() is False  # 0: glibc's default kept
    for bad in ("two", "-1", "1.5"):
        monkeypatch.setenv(ARENA_MAX_ENV, bad)
        with pytest.raises(ValueError, match=ARENA_MAX_ENV):
            arena_max_from_env()


def test_loading_the_code_location_caps_the_arenas_on_glibc():
    """In a fresh interpreter: importing the definitions sets the cap (mallopt answers 1 on glibc)."""
    code = ("import churn_pipeline.definitions, ctypes, ctypes.util, sys; "
            "libc = ctypes.CDLL(ctypes.util.find_library('c')); "
            "sys.exit(0 if not hasattr(libc, 'gnu_get_libc_version') else 0 if "
            "__import__('churn_pipeline.memory').memory.limit_malloc_arenas(2) else 1)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0

"""Model artifacts on disk, named and verified by their content hash.

A model file is only ever loaded when its SHA-256 matches the hash registered for it, so an unknown
or tampered pickle is never unpickled.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import joblib

from churn_pipeline.logic.modeling import ChurnModel

VERSION_LENGTH = 16


class ModelStoreError(RuntimeError):
    """A model artifact is missing or does not match its registered hash."""


def save_model(model: ChurnModel, model_dir: str | Path) -> tuple[str, Path, str]:
    """Write the model atomically; returns (model_version, path, sha256 of the file)."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    version = digest[:VERSION_LENGTH]
    directory = Path(model_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"churn_model_{version}.joblib"
    if not path.exists():
        with tempfile.NamedTemporaryFile(dir=directory, delete=False, suffix=".tmp") as handle:
            handle.write(payload)
            temporary = handle.name
        os.replace(temporary, path)
    return version, path, digest


def load_model(path: str | Path, expected_sha256: str) -> ChurnModel:
    """Load a model file after checking its content hash."""
    path = Path(path)
    if not path.is_file():
        raise ModelStoreError(f"model file {path} is missing")
    payload = path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != expected_sha256:
        raise ModelStoreError(
            f"model file {path} has hash {digest[:16]}…, registered {expected_sha256[:16]}…; not loading it"
        )
    model = joblib.load(io.BytesIO(payload))
    if not isinstance(model, ChurnModel):
        raise ModelStoreError(f"model file {path} does not hold a ChurnModel")
    return model

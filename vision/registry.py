"""The model files in `models/`, pinned by sha256 in `models/models.json`; nothing is ever downloaded."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError


def models_dir() -> Path:
    """`$AUDIENCE_MODELS_DIR`, else the `models/` folder beside the package."""
    env = os.environ.get("AUDIENCE_MODELS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models"


@dataclass(frozen=True)
class ModelFile:
    name: str
    path: Path
    sha256: str


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_file(name: str, directory: Path | None = None) -> ModelFile:
    """Resolve a model by its registry name and check its sha256. Raises ModelError."""
    directory = directory or models_dir()
    registry = directory / "models.json"
    try:
        entries = json.loads(registry.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{registry}: model registry unreadable ({exc.__class__.__name__})") from None
    if name not in entries:
        raise ModelError(f"unknown model '{name}' (known: {', '.join(sorted(entries))})")
    entry = entries[name]
    path = directory / entry["file"]
    if not path.is_file():
        raise ModelError(f"{path}: model file missing (see {entry.get('card', 'its model card')})")
    digest = sha256_of(path)
    if digest != entry["sha256"]:
        raise ModelError(f"{path}: sha256 {digest[:12]}… does not match the pinned {entry['sha256'][:12]}…")
    return ModelFile(name, path, digest)

import json
import shutil

import pytest

from vision.errors import ModelError
from vision.registry import model_file, models_dir, sha256_of


def test_every_registered_model_matches_its_pin_and_has_a_card():
    entries = json.loads((models_dir() / "models.json").read_text())
    assert {"face_landmarker", "cnn", "fusion"} <= set(entries)
    for name, entry in entries.items():
        m = model_file(name)
        assert m.sha256 == entry["sha256"]
        card = (models_dir() / entry["card"]).read_text()
        assert entry["file"] in card and entry["sha256"] in card


def test_tampered_or_missing_model_is_refused(tmp_path):
    d = tmp_path / "models"
    shutil.copytree(models_dir(), d, ignore=shutil.ignore_patterns("*.task", "src"))
    with pytest.raises(ModelError, match="missing"):
        model_file("face_landmarker", d)
    (d / "fer_mini_xception.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="sha256"):
        model_file("cnn", d)
    with pytest.raises(ModelError, match="unknown model"):
        model_file("nope", d)
    assert sha256_of(d / "fer_mini_xception.onnx") != json.loads((d / "models.json").read_text())["cnn"]["sha256"]

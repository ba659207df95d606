"""vision.onnx: one session factory, device selection (cpu | cuda | auto) tested on a CPU-only machine."""
import pytest

from builders import FIXTURES, run_cli
from vision import onnx
from vision.errors import AudienceError
from vision.registry import model_file

CPU_ONLY = ["CPUExecutionProvider"]
WITH_CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_cpu_is_always_cpu():
    assert onnx.resolve_device("cpu", WITH_CUDA) == ("cpu", None)
    assert onnx.providers_for("cpu", WITH_CUDA) == ["CPUExecutionProvider"]


def test_cuda_with_and_without_provider():
    assert onnx.resolve_device("cuda", WITH_CUDA) == ("cuda", None)
    assert onnx.providers_for("cuda", WITH_CUDA) == WITH_CUDA
    with pytest.raises(onnx.DeviceUnavailable) as err:
        onnx.resolve_device("cuda", CPU_ONLY)
    assert isinstance(err.value, AudienceError) and err.value.exit_code == 10
    assert "\n" not in str(err.value) and "--device cpu" in str(err.value)


def test_auto_falls_back_with_one_line_notice():
    assert onnx.resolve_device("auto", WITH_CUDA) == ("cuda", None)
    device, notice = onnx.resolve_device("auto", CPU_ONLY)
    assert device == "cpu" and notice and "\n" not in notice
    assert onnx.providers_for("auto", CPU_ONLY) == ["CPUExecutionProvider"]


def test_unknown_device():
    with pytest.raises(ValueError):
        onnx.resolve_device("tpu", CPU_ONLY)


def test_session_uses_the_available_providers(monkeypatch):
    path = model_file("fusion").path
    sess = onnx.session(path, threads=1, device="auto")
    assert sess.get_providers() == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnx, "available_providers", lambda: CPU_ONLY)
    with pytest.raises(onnx.DeviceUnavailable):
        onnx.session(path, device="cuda")
    # a CUDA provider listed but unusable (onnxruntime-gpu without a GPU): still a one-line error
    monkeypatch.setattr(onnx, "available_providers", lambda: WITH_CUDA)
    import onnxruntime as ort

    class FakeSession:
        def __init__(self, *a, **k):
            self.providers = k["providers"]

        def get_providers(self):
            return ["CPUExecutionProvider"]

    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    with pytest.raises(onnx.DeviceUnavailable):
        onnx.session(path, device="cuda")


def test_every_onnx_model_goes_through_the_factory(monkeypatch):
    """Classifiers and MTCNN ask the factory, with the settings' device."""
    from vision.pipeline import Settings, build_stages, model_files

    calls = []
    real = onnx.session
    monkeypatch.setattr(onnx, "session", lambda path, threads=1, device="cpu", varying_shapes=False:
                        calls.append((device, varying_shapes)) or real(path, threads, "cpu", varying_shapes))
    settings = Settings(scene="audience", device="cuda")
    stages = build_stages(settings, "video", model_files(settings))
    stages.close()
    # cnn (with its penultimate output: the default head, v6, reads fer's features), face-api, fusion head,
    # CenterFace, P-, R-, O-Net; fer is opened once. The detectors are fed many input shapes (vision.onnx)
    assert sorted(calls) == [("cuda", False)] * 3 + [("cuda", True)] * 4


def test_detectors_sessions_keep_no_memory_pattern_per_input_shape():
    """ONNX Runtime's memory pattern keeps a block per input shape: off for models fed many shapes (a 100-seat
    1080p audience peaked at 2.19 GB with it, 1.50 GB without), on for the rest."""
    from vision.registry import model_file

    assert onnx.session_options().enable_mem_pattern
    assert not onnx.session_options(varying_shapes=True).enable_mem_pattern
    for name, varying in (("centerface", True), ("mtcnn_pnet", True), ("faceapi", False)):
        sess = onnx.session(model_file(name).path, varying_shapes=varying)
        assert sess.get_session_options().enable_mem_pattern is not varying


def test_settings_validate_device():
    from vision.pipeline import Settings

    with pytest.raises(ValueError):
        Settings(device="gpu")


@pytest.mark.skipif("CUDAExecutionProvider" in onnx.available_providers(), reason="a CUDA provider is present")
def test_cli_device_cuda_is_one_line_error(tmp_path):
    r = run_cli("analyze", FIXTURES / "images" / "astronaut.jpg", "--out", tmp_path, "--device", "cuda")
    assert r.returncode == 10, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("audience: error: --device cuda")


@pytest.mark.skipif("CUDAExecutionProvider" in onnx.available_providers(), reason="a CUDA provider is present")
def test_cli_device_auto_falls_back(tmp_path):
    r = run_cli("analyze", FIXTURES / "images" / "astronaut.jpg", "--out", tmp_path, "--device", "auto",
                "--classifier", "cnn", "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines() == ["audience: notice: no CUDA provider in ONNX Runtime: running on the CPU"]
    import json

    assert json.loads((tmp_path / "summary.json").read_text())["settings"]["device"] == "cpu"


# scripts/train_fusion_head.py was being rewritten beside this change (issue 13); its two sessions of the
# head it has just trained join the factory when that lands, and this exemption goes
NOT_YET = {"scripts/train_fusion_head.py"}


def test_only_the_factory_opens_onnx_runtime_sessions():
    """No module of the engine, script or test builds an InferenceSession or SessionOptions of its own."""
    from builders import ROOT

    own = [f"{p.relative_to(ROOT)}:{n}" for folder in ("vision", "scripts", "tests")
           for p in sorted((ROOT / folder).rglob("*.py")) for n, line in enumerate(p.read_text().splitlines(), 1)
           if ("InferenceSession(" in line or "SessionOptions(" in line)
           and str(p.relative_to(ROOT)) not in {"vision/onnx.py", "tests/vision/test_onnx.py", *NOT_YET}]
    assert own == []


def test_facemesh_onnx_runtime_takes_its_sessions_from_the_factory(monkeypatch):
    """FaceMesh's ONNX copies get the device (so --device cuda reaches them); LiteRT opens no ONNX session."""
    from vision.facemesh import FaceMesh, FaceMeshOptions

    calls = []
    real = onnx.session
    monkeypatch.setattr(onnx, "session", lambda path, threads=1, device="cpu": calls.append((path.name, device)) or
                        real(path, threads, "cpu"))
    paths = model_file("face_landmarks_onnx").path, model_file("face_blendshapes_onnx").path
    with FaceMesh(FaceMeshOptions(*paths, runtime="onnx", device="cuda", threads=2)):
        pass
    assert calls == [(paths[0].name, "cuda"), (paths[1].name, "cuda")]
    with FaceMesh(FaceMeshOptions(model_file("face_landmarks").path, model_file("face_blendshapes").path)):
        pass
    assert len(calls) == 2


def test_registered_session_checks_the_pin(tmp_path):
    from vision.errors import ModelError

    assert onnx.registered_session("cnn").get_inputs()[0].name == "input"
    (tmp_path / "models.json").write_text('{"cnn": {"file": "x.onnx", "sha256": "0"}}')
    (tmp_path / "x.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="sha256"):
        onnx.registered_session("cnn", directory=tmp_path)

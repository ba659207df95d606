"""ONNX Runtime, wrapped once: every ONNX session (classifiers, MTCNN, CenterFace, FaceMesh's ONNX copies, the
scripts that check a conversion) comes from `session()`, the one place for threads, providers and graph
options; `registered_session()` is the path from a registry name (sha256 checked by `vision.registry`) to one.

`device` is "cpu", "cuda" or "auto". `resolve_device` turns it into a concrete device once per run (the
command line prints its notice), so workers never decide on their own:

- "cpu": the CPU execution provider.
- "cuda": ONNX Runtime's CUDA provider, CPU as ONNX Runtime's own fallback for operators CUDA lacks.
  Without a CUDA provider (the `onnxruntime` wheel, or `onnxruntime-gpu` without a usable GPU) it is an
  error, `DeviceUnavailable` (exit 10).
- "auto": "cuda" when the provider is there, else "cpu" with a one-line notice.

`pip install -e '.[gpu]'` brings `onnxruntime-gpu`; both wheels provide the `onnxruntime` module, and the
base dependency keeps the CPU one, so replace it: `pip install -e '.[gpu]' && pip uninstall -y onnxruntime
&& pip install --force-reinstall --no-deps onnxruntime-gpu`.
"""
from __future__ import annotations

from pathlib import Path

from .errors import DeviceUnavailable

DEVICES = ("cpu", "cuda", "auto")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_device(device: str, available: list[str] | None = None) -> tuple[str, str | None]:
    """(concrete device "cpu" or "cuda", a one-line notice or None). Raises DeviceUnavailable."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}")
    available = available_providers() if available is None else available
    if device == "cpu":
        return "cpu", None
    if CUDA in available:
        return "cuda", None
    if device == "cuda":
        raise DeviceUnavailable("--device cuda: ONNX Runtime has no CUDA provider here (providers: "
                                f"{', '.join(available) or 'none'}); install the GPU build with "
                                "pip install -e '.[gpu]' on a machine with an NVIDIA GPU, or use --device cpu")
    return "cpu", "no CUDA provider in ONNX Runtime: running on the CPU"


def providers_for(device: str, available: list[str] | None = None) -> list[str]:
    """Execution providers, in ONNX Runtime's order of preference, for a device ("auto" resolved here)."""
    concrete, _ = resolve_device(device, available)
    return [CUDA, CPU] if concrete == "cuda" else [CPU]


def session_options(threads: int = 1, varying_shapes: bool = False):
    """`varying_shapes`: the model is fed inputs of many shapes (a detector: frames at one or more scales, an
    image pyramid, batches of candidates). ONNX Runtime's memory pattern, which plans and keeps a block per
    input shape, is then off: with it, CenterFace on 1080p frames and their 1.5x low-light copies peaked at
    1.9 GB, without it 1.3 GB, a few % slower per pass (`scripts/bench_devices.py` times the scene)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.enable_mem_pattern = not varying_shapes
    return opts


def session(path: Path | str | bytes, threads: int = 1, device: str = "cpu", varying_shapes: bool = False):
    """An `onnxruntime.InferenceSession` for a model file (or serialized model bytes) on `device`
    (`varying_shapes`: see `session_options`).

    The only `InferenceSession(` in vision/, scripts/ and tests/ (tests/test_onnx.py checks it)."""
    import onnxruntime as ort

    model = path if isinstance(path, bytes) else str(path)
    sess = ort.InferenceSession(model, session_options(threads, varying_shapes), providers=providers_for(device))
    if device == "cuda" and CUDA not in sess.get_providers():  # listed, but no usable GPU behind it
        raise DeviceUnavailable("--device cuda: ONNX Runtime could not start its CUDA provider (no usable "
                                "GPU or CUDA libraries); use --device cpu or auto")
    return sess


def registered_session(name: str, threads: int = 1, device: str = "cpu", directory: Path | None = None):
    """A session for a model of `models/models.json` by its registry name, its sha256 checked (ModelError)."""
    from .registry import model_file

    return session(model_file(name, directory).path, threads, device)

"""The command line above the engine: one Settings whose defaults are the options' defaults, one error tree
whose table is the CLI's epilog and the README's, subcommands registered in one place, vision never
importing service (import-linter's layers contract), and the engine's seams (publisher, store) without a
database."""
import argparse
import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builders import FIXTURES, ROOT
from service.cli import COMMANDS, build_parser
from service.cli.options import ANALYSIS_OPTIONS, COMMAND_DEFAULTS, REACTION_OPTIONS, settings_from_args
from vision import errors
from vision.reactions import ReactionOptions
from vision.settings import Settings

MINIMAL = {"analyze": ["analyze", "x.mp4", "--out", "o"],
           "batch": ["batch", "m.csv", "--db", "sqlite://", "--out", "o"],
           "live": ["live", "--source", "0", "--screening", "1", "--db", "sqlite://"]}


@pytest.mark.parametrize("command", sorted(MINIMAL))
def test_option_defaults_are_the_settings_defaults(command):
    args = build_parser().parse_args(MINIMAL[command])
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    for option, field in ANALYSIS_OPTIONS.items():
        expected = COMMAND_DEFAULTS[command].get(field, defaults[field])
        assert getattr(args, option) == expected, (command, option)
    for option, field in REACTION_OPTIONS.items():
        assert getattr(args, option) == getattr(defaults["reactions"], field), (command, option)
    # ... and the settings built from them are Settings' own, but where the command says otherwise
    assert settings_from_args(args) == Settings(**COMMAND_DEFAULTS[command])


def test_command_defaults_are_today_s():
    # analyze and batch decide the scene from the first frame (2 frames/s in the audience scene);
    # live analyses 2 frames/s whatever the scene
    assert COMMAND_DEFAULTS["analyze"] == COMMAND_DEFAULTS["batch"] == {"scene": "auto"}
    assert COMMAND_DEFAULTS["live"] == {"scene": "auto", "fps": 2.0}
    assert Settings(scene="audience").with_audience_rate().fps == 2.0
    assert Settings(scene="audience", fps=5).with_audience_rate().fps == 5
    assert Settings().with_audience_rate().fps is None


def test_live_takes_the_audience_options():
    args = build_parser().parse_args(MINIMAL["live"] + [
        "--detect-every", "3", "--max-faces", "40", "--max-lost", "2", "--seat-empty-after", "20",
        "--detector", "mtcnn", "--confirm-hits", "3", "--confirm-within", "1.5", "--smooth", "0", "--baseline", "5"])
    s = settings_from_args(args)
    assert (s.detect_every_s, s.max_faces, s.max_lost_s, s.seat_empty_after_s, s.detector, s.confirm_hits,
            s.confirm_within_s, s.reactions) == (3, 40, 2, 20, "mtcnn", 3, 1.5, ReactionOptions(0, 5))


def test_settings_are_checked():
    for bad in ({"min_quality": 1.5}, {"scene": "crowd"}, {"detector": "yolo"}, {"device": "tpu"}, {"fps": 0},
                {"reactions": {"smooth_s": 1}}):
        with pytest.raises(ValueError):
            Settings(**bad)


def test_subcommands_are_registered_once_with_run():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(COMMANDS)
    for name, module in COMMANDS.items():
        assert callable(module.add_parser) and callable(module.run), name
        assert errors.epilog() in sub.choices[name].epilog


def test_one_row_per_exit_code_from_the_classes():
    table = errors.exit_codes()
    assert list(table) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 130]
    for cls in (errors.ManifestError, errors.DatabaseUnusable, errors.PublishError, errors.DeviceUnavailable,
                errors.RayUnavailable, errors.ModelExtraError, errors.InputNotFound):
        assert issubclass(cls, errors.AudienceError) and cls.exit_code in table
    assert errors.ManifestError.exit_code == 2
    assert errors.PublishError.exit_code == errors.DatabaseUnusable.exit_code == errors.Unreachable.exit_code == 8
    # the modules that raise them use the one class
    from service.uplink import client
    from vision import onnx, ray_engine

    assert (client.PublishError, onnx.DeviceUnavailable, ray_engine.RayUnavailable) == (
        errors.PublishError, errors.DeviceUnavailable, errors.RayUnavailable)


def test_no_exception_class_outside_the_error_tree():
    """Every public exception lives in vision/errors.py (private control-flow ones may stay local)."""
    import ast

    outside = []
    for path in sorted((ROOT / "vision").rglob("*.py")) + sorted((ROOT / "service").rglob("*.py")):
        if path.name == "errors.py" and path.parent.name == "vision":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
                if any(b.endswith(("Error", "Exception")) or b in ("Conflict", "Invalid") for b in bases):
                    outside.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert outside == []


def test_readme_exit_code_table_is_the_classes():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1]
    found = "\n".join(line for line in section.split("\n\n", 2)[1].splitlines() if line.startswith("|"))
    assert found == errors.markdown_table(), (
        "README's exit-code table differs from vision/errors.py; paste the output of "
        "python -c 'from vision.errors import markdown_table; print(markdown_table())'")


def test_no_exception_is_classified_by_its_message():
    for path in list((ROOT / "service" / "cli").glob("*.py")) + [ROOT / "vision" / "errors.py"]:
        assert not re.search(r"in str\(exc\)", path.read_text()), path


def test_vision_never_imports_service():
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    r = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:]


def test_module_sizes():
    paths = list((ROOT / "service" / "cli").glob("*.py")) + [ROOT / "service" / "season.py"] + [
        ROOT / "vision" / f"{m}.py" for m in ("analyze", "batch", "manifest", "settings", "errors", "pipeline")]
    for path in paths:
        assert len(path.read_text().splitlines()) <= 300, path


class FakePublisher:
    def __init__(self):
        self.sources = []

    def add(self, source, cols):
        self.sources.append((source, len(cols["t"])))

    def publish(self):
        return {"to": "memory", "rows": sum(n for _, n in self.sources)}, "published to memory"


def test_analyze_engine_hands_its_statistics_to_a_publisher(tmp_path, capsys):
    from vision.analyze import run_analyze
    from vision.settings import AnalyzeRequest

    publisher = FakePublisher()
    code = run_analyze(AnalyzeRequest([str(FIXTURES / "two_faces.mp4")], tmp_path,
                                      Settings(scene="single", fps=2.0)), quiet=False, publisher=publisher)
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert publisher.sources[0][0] == "two_faces.mp4" and summary["faces"] == publisher.sources[0][1]
    assert summary["published"] == {"to": "memory", "rows": summary["faces"]}
    assert "published to memory" in capsys.readouterr().out


def test_batch_engine_stores_through_its_store_without_a_database(tmp_path):
    from vision.batch import BatchRequest, run_batch
    from vision.manifest import read_manifest

    shutil.copy(FIXTURES / "two_faces.mp4", tmp_path / "rec.mp4")
    (tmp_path / "m.csv").write_text("path,content,screening,camera\nrec.mp4,Film,night,front\n")
    calls = []

    def store(rec, cols):
        calls.append((rec.key, len(cols["t"])))
        return {"inserted": len(cols["t"]), "unchanged": 0}

    out = tmp_path / "out"
    request = BatchRequest(out, Settings(scene="single", fps=2.0), workers=1)
    assert run_batch(request, read_manifest(tmp_path / "m.csv"), store, quiet=True) == 0
    marker = json.loads((out / "_done" / "Film__night__front.json").read_text())
    assert calls == [("Film__night__front", marker["faces"])] and marker["inserted"] == marker["faces"] > 0
    assert run_batch(request, read_manifest(tmp_path / "m.csv"), store, quiet=True) == 0  # complete: skipped
    assert len(calls) == 1

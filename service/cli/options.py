"""What the subcommands share: the parser class, argument types, the analysis options (one set for analyze,
batch and live, defaults read from vision.settings.Settings) and the engine options.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from vision.detection import DETECTORS
from vision.errors import epilog
from vision.labels import CLASSIFIERS, LABEL_RULES
from vision.onnx import DEVICES
from vision.reactions import ReactionOptions
from vision.settings import AUDIENCE_FPS, SCENES, Settings

# Where a command's default differs from Settings' (the one place it does): the command line decides the
# scene from the first frame (Settings' "single" is for code that knows its scene), and a live camera is
# analysed at a fixed rate (newer frames replace ones not yet analysed) where a file's every frame is read.
COMMAND_DEFAULTS = {
    "analyze": {"scene": "auto"},
    "batch": {"scene": "auto"},
    "live": {"scene": "auto", "fps": 2.0},
}

# option -> Settings field (--smooth and --baseline: Settings.reactions' fields)
ANALYSIS_OPTIONS = {"fps": "fps", "classifier": "classifier", "scene": "scene", "detect_every": "detect_every_s",
                    "detector": "detector", "seat_map": "seat_map", "seat_empty_after": "seat_empty_after_s",
                    "max_faces": "max_faces", "max_lost": "max_lost_s", "confirm_hits": "confirm_hits",
                    "confirm_within": "confirm_within_s", "min_quality": "min_quality", "device": "device",
                    "expression_every": "expression_every_s", "label_rule": "label_rule"}
REACTION_OPTIONS = {"smooth": "smooth_s", "baseline": "baseline_s"}


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, f"audience: error: {message}\n")


def add_command(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand's parser, with the exit-code table as its epilog."""
    return sub.add_parser(name, epilog=epilog(), formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def not_negative(text):
    value = number(text)
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text):
    value = number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {text}")
    return value


def default_of(cls, name: str):
    """A dataclass field's default: the one place a default is written."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def add_analysis_options(parser, command: str) -> None:
    """The analysis settings as options, the same for analyze, batch and live; defaults from Settings
    (COMMAND_DEFAULTS where a command's differ)."""
    d = {name: default_of(Settings, name) for name in ANALYSIS_OPTIONS.values()}
    d.update(COMMAND_DEFAULTS[command])
    r = default_of(Settings, "reactions")
    g = parser.add_argument_group("analysis")
    g.add_argument("--fps", type=positive(float), default=d["fps"],
                   help="analysis rate in frames per second of the source (default: " +
                        (f"every frame; {AUDIENCE_FPS:g} in the audience scene)" if d["fps"] is None else
                         f"{d['fps']:g}; newer frames replace ones not yet analysed)"))
    g.add_argument("--classifier", choices=CLASSIFIERS, default=d["classifier"],
                   help=f"expression model (default {d['classifier']}): fusion (blendshapes+geometry+both CNNs; "
                        "the v7 head, also trained on small faces read as an audience is read), fusion-v7 (the same), "
                        "fusion-v6 (the default until v7), fusion-v2 (both CNNs on the crop alone), "
                        "fusion-v4 (the same head plus face-api's last block fine-tuned on venue-like faces), "
                        "fusion-v3 (the same head reading both CNNs on the face and its mirror image: more accurate, "
                        "twice the CNN work), fusion-v5 (fusion-v3 plus fer's penultimate features), fusion-v1 "
                        "(the previous head: blendshapes+geometry+fer CNN), cnn (fer mini-Xception) or faceapi")
    g.add_argument("--label-rule", choices=LABEL_RULES, default=d["label_rule"],
                   help="how a fusion head names each face's expression (the emotion column; probabilities, valence "
                        "and curves are the same either way): balanced (its balanced decision: best recall of rare "
                        "expressions), probable (the most probable expression: a calm audience reads calm) or auto "
                        f"(probable in the audience scene, balanced in the single one; default {d['label_rule']})")
    g.add_argument("--scene", choices=SCENES, default=d["scene"],
                   help="single: faces near the camera (MediaPipe's detector); audience: a wide shot of many "
                        "small faces (a detector every --detect-every seconds, then each face followed by crop); "
                        "auto: audience when the first frame shows 3 or more faces or a face under 12%% of the "
                        f"frame height (default {d['scene']})")
    g.add_argument("--detect-every", type=positive(float), default=d["detect_every_s"],
                   help=f"audience scene: seconds between full-frame face detections (default {d['detect_every_s']:g})")
    g.add_argument("--detector", choices=DETECTORS, default=d["detector"],
                   help=f"audience scene: the face detector (default {d['detector']}): centerface+mtcnn (both, one "
                        "box per face), centerface (finds more small, blurred and turned faces in real crowds) or "
                        "mtcnn (the earlier one)")
    g.add_argument("--seat-map", type=Path, default=d["seat_map"],
                   help="JSON seat map: seats (ids anchored to them) and excluded opt-out regions, which are "
                        "blacked out before any model sees the frame")
    g.add_argument("--seat-empty-after", type=positive(float), default=d["seat_empty_after_s"],
                   help="audience scene / seat map: seconds a seat must stay empty before its next face "
                        f"counts as a new viewer (default {d['seat_empty_after_s']:g})")
    g.add_argument("--max-faces", type=positive(int), default=d["max_faces"],
                   help="faces per frame at most (default 8 in the single scene, 500 in the audience scene)")
    g.add_argument("--max-lost", type=positive(float), default=d["max_lost_s"],
                   help=f"seconds a face may be unseen before its track ends (default {d['max_lost_s']:g})")
    g.add_argument("--confirm-hits", type=positive(int), default=d["confirm_hits"],
                   help="a new track is confirmed (gets an id, is written) once seen in this many analysed "
                        f"frames within --confirm-within seconds (default {d['confirm_hits']}; 1: at once)")
    g.add_argument("--confirm-within", type=positive(float), default=d["confirm_within_s"],
                   help=f"seconds within which a new track must reach --confirm-hits (default "
                        f"{d['confirm_within_s']:g})")
    g.add_argument("--min-quality", type=fraction, default=d["min_quality"],
                   help=f"curves count a face's expression only from this face quality up (0-1, default "
                        f"{d['min_quality']:g}); faces present count in n_present whatever their quality")
    g.add_argument("--smooth", type=not_negative, default=r.smooth_s, metavar="SECONDS",
                   help="time constant of each viewer's smoothing filter in seconds (default "
                        f"{r.smooth_s:g}; 0: raw readings)")
    g.add_argument("--baseline", type=positive(float), default=r.baseline_s, metavar="SECONDS",
                   help="each viewer's opening window in seconds: its median is their resting baseline, "
                        f"and <value>_delta columns read against it (default {r.baseline_s:g})")
    if command == "live":  # live reads at the default cadence (the same numbers as analyze; at --fps <= 10 every frame)
        parser.set_defaults(expression_every=d["expression_every_s"])
    else:
        g.add_argument("--expression-every", type=not_negative, default=d["expression_every_s"], metavar="SECONDS",
                       help="read each viewer's face crop at most every SECONDS, carrying the last reading between "
                            f"(default {d['expression_every_s']:g}; 0: every analysed frame; the CNNs are most of the per-frame "
                            "cost; README: what it costs in accuracy); the fusion head, metrics, head pose and "
                            "attention stay per frame")
    g.add_argument("--device", choices=DEVICES, default=d["device"],
                   help=f"where the ONNX models run (default {d['device']}): cpu, cuda (an error without a CUDA "
                        "provider) or auto (cuda when there is one, else cpu with a notice)")


def settings_from_args(args) -> Settings:
    """Settings from the analysis options; --device made concrete once per run (its notice is one line)."""
    from vision.onnx import resolve_device

    values = {field: getattr(args, option) for option, field in ANALYSIS_OPTIONS.items()}
    values["seat_map"] = str(args.seat_map) if args.seat_map else None
    values["device"], notice = resolve_device(args.device)
    if notice:
        print(f"audience: notice: {notice}", file=sys.stderr)
    reactions = ReactionOptions(**{field: getattr(args, option) for option, field in REACTION_OPTIONS.items()})
    return Settings(**values, reactions=reactions)


def add_engine_options(parser) -> None:
    """Where the jobs run: this machine's processes or a Ray cluster (analyze and batch)."""
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: this machine's processes (default); ray: a Ray cluster (pip install "
                             "'.[ray]'), long-lived workers that load the models once, jobs retried on worker loss")
    parser.add_argument("--address", default=None,
                        help="--engine ray: the cluster's address (host:port or 'auto'); default: start one here")

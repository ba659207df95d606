"""vision.progress: tqdm on stderr, only on a terminal unless forced, off when quiet, no total for streams."""
import io

from vision.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run(total, stream, **kw):
    p = Progress(total, stream=stream, **kw)
    for _ in range(5):
        p.advance(1, faces=2)
    p.close()
    return stream.getvalue()


def test_silent_off_a_terminal_and_when_quiet():
    assert run(5, io.StringIO()) == ""
    assert run(5, Terminal(), enabled=False) == ""


def test_drawn_on_a_terminal_with_count_rate_and_faces():
    text = run(5, Terminal(), label="season")
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("season: 100%") and "5/5" in last and "frame/s" in last and "10 faces" in last
    assert text.endswith("\n")


def test_forced_off_a_terminal_and_no_total_for_streams():
    last = run(None, io.StringIO(), enabled=True).rstrip("\n").split("\r")[-1]
    assert last.startswith("analysing: 5frame") and "%" not in last
    assert "%" not in run(0, io.StringIO(), enabled=True)  # an unknown length (0 expected frames): no total

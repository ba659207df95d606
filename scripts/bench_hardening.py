"""Issue 16 item 4, measured: the peak memory of `audience serve` while an unauthenticated client sends a
120 MB JSON body to POST /api/v1/contents, for this checkout and (optionally) a baseline checkout, in the
same run (the host's speed and memory vary; compare the two lines, not against figures from elsewhere).

    python scripts/bench_hardening.py [--baseline /path/to/other/checkout] [--mb 120]

Per checkout it prints: the answer's status line, how much of the body the client got to send before the
answer, the server's peak RSS (VmHWM) before and after, and the seconds until the answer.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from _bench import AUDIENCE, ROOT, serving


def _hwm_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(root: Path, mb: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root)}
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/bench.db"
        key = subprocess.run([*AUDIENCE, "keys", "--db", db, "create", "--name", "ops", "--scope", "admin"],
                             cwd=root, env=env, capture_output=True, text=True, check=True)
        assert key.stdout.startswith("aud_")
        with serving(db, root, start_timeout_s=60) as server:
            before = _hwm_mb(server.pid)
            # valid JSON, as the was: a list of ~60 million zeros, then a title and duration
            head, tail = b'{"pad": [0', b'], "title": "t", "duration_s": 1}'
            size = mb * 2 ** 20
            size -= (size - len(head) - len(tail)) % 2  # whole ",0" pairs between head and tail
            started = time.perf_counter()
            sent, answer = 0, b""
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(b"POST /api/v1/contents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(size).encode() + b"\r\n\r\n")
                body_mb = b",0" * 2 ** 19
                sock.settimeout(120)
                try:
                    sock.sendall(head)
                    sent = len(head)
                    while sent < size - len(tail):
                        piece = body_mb[: min(len(body_mb), size - len(tail) - sent)]
                        sock.sendall(piece)
                        sent += len(piece)
                    sock.sendall(tail)
                    sent += len(tail)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                try:
                    answer = sock.recv(200)
                except (ConnectionResetError, socket.timeout):
                    pass
            elapsed = time.perf_counter() - started
            time.sleep(0.5)
            return {"status": answer.split(b"\r\n")[0].decode(errors="replace") or "(connection closed)",
                    "sent_mb": sent / 2 ** 20, "hwm_before_mb": before, "hwm_after_mb": _hwm_mb(server.pid),
                    "seconds": elapsed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, help="another checkout to measure the same way (e.g. main)")
    p.add_argument("--mb", type=int, default=120)
    args = p.parse_args()
    for name, root in (("baseline", args.baseline), ("this checkout", ROOT)):
        if root is None:
            continue
        r = measure(root, args.mb)
        print(f"{name:14s} {r['status']:40s} body sent {r['sent_mb']:6.1f} MB  peak RSS {r['hwm_before_mb']:6.0f} -> "
              f"{r['hwm_after_mb']:6.0f} MB  answered in {r['seconds']:.2f} s")


if __name__ == "__main__":
    main()

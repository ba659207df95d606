"""A small MJPEG-over-HTTP server on loopback for tests: serves frames as multipart/x-mixed-replace."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2


class MjpegServer:
    """Serves `frames` (BGR arrays) once at `fps` at http://127.0.0.1:<port>/stream.mjpg, then closes."""

    def __init__(self, frames, fps: float = 30.0):
        self.frames, self.fps = frames, fps
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for f in server.frames:
                        ok, jpg = cv2.imencode(".jpg", f)
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(jpg)).encode() + b"\r\n\r\n" + jpg.tobytes() + b"\r\n")
                        time.sleep(1.0 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class CameraServer:
    """An MJPEG camera on loopback that runs on the wall clock whether anyone watches or not: frame i of
    `frames` is live from i / fps seconds after start(), then the stream ends. `cut()` drops every
    connection and answers 503 until `restore()` (frames shown meanwhile are lost, as with a real camera)."""

    def __init__(self, frames, fps: float):
        self.frames, self.fps = frames, fps
        self.down = threading.Event()
        self.started = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if server.down.is_set() or server.started is None:
                    self.send_error(503, "camera down")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                last = -1
                try:
                    while not server.down.is_set():
                        i = int((time.monotonic() - server.started) * server.fps)
                        if i >= len(server.frames):
                            return
                        if i != last:
                            ok, jpg = cv2.imencode(".jpg", server.frames[i])
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                             + str(len(jpg)).encode() + b"\r\n\r\n" + jpg.tobytes() + b"\r\n")
                            last = i
                        time.sleep(0.2 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps

    def start(self) -> None:
        self.started = time.monotonic()

    def cut(self) -> None:
        self.down.set()

    def restore(self) -> None:
        self.down.clear()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.down.set()
        self.httpd.shutdown()
        self.httpd.server_close()

"""`audience live`: one camera, stream or paced file analysed in real time into a running screening.

    run.py      LiveRequest and run_live: the composition of the parts below
    loop.py     LiveAnalysis (frame loop, cut at gaps), pump (reader -> analysis), stop_on_signals
    batcher.py  SecondBatcher (observations -> per-second batches), Timing, Outbox (-> the spool)
    ops.py      LiveMetrics and the /metrics + /healthz server beside the loop

The spool and the sender are the uplink's (service.uplink); the reader thread is capture (vision.stream).
"""
from .run import LiveRequest, camera_name, run_live, summary_json

__all__ = ["LiveRequest", "camera_name", "run_live", "summary_json"]

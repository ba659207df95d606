"""The service: storage, aggregation and the HTTP API for reaction curves (FastAPI + SQLModel).

Reaction data are stored as mergeable sufficient statistics, never as faces: per (screening, camera,
track, second) the sample count and the sum and sum of squares of every value, and per (screening,
camera, second) the number of tracks and the sum and sum of squares of their per-second means. Curves
over any set of screenings and cameras are sums of those rows.
"""

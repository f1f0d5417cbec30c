"""Benchmark harness: the real server driven over real WebSockets at real-time pace.

``python -m bench`` (``make bench``) measures ASR cost, per-turn latency,
capacity, memory and streamed-versus-batch WER, prints a table and writes a
JSON file; see :mod:`bench.__main__` for the options.
"""

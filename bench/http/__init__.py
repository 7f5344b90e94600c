"""REST latency and throughput bench: `python -m bench.http` (see __main__)."""

"""The WebSocket load bench: `python -m bench.load --help`.

One run starts (or targets) a server, provisions the world it needs, drives it with a Trio socket
swarm running in separate processes, checks that nothing was lost, duplicated or reordered, and
writes a JSON result, a PNG plot and a printed table. See bench/README.md.
"""

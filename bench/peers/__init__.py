"""Peer servers the load bench measures the hub against (`python -m bench.peers`)."""

"""The cost of notifications on the message path: messages/s with and without three mentions
and a webhook per message, in one run on one hub: `python -m bench.notifications` (see
__main__ and bench/README.md)."""

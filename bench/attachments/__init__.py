"""Attachment upload and download throughput, and the hub's memory during an upload:
`python -m bench.attachments` (see __main__)."""

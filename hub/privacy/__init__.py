"""Privacy (issue 22): what the hub holds about a person or an organization, given back to them.

`export` gathers a subject's data (GDPR articles 15 and 20: access and portability) into one
zip archive, produced as a stream of bytes so neither the hub nor the caller ever holds it
whole; `archive` is the streaming zip writer it uses. The rows are read by
`hub.storage.exports`; the REST door is `hub.http.export`, the operator's `hub export`.
"""

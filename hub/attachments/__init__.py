"""Attachments: files shared in threads (issue 20). `chunks` seals a file's contents in
authenticated chunks; `blobstore` is the interface blob stores offer and `localblobs` the local
directory one (the embedded default). `s3blobs` keeps blobs in an S3-compatible bucket for
several nodes, and `stores` opens whichever store a blob URL names."""

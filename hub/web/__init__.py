"""The web client's files: a page, its styles and plain JavaScript modules, served as they are
(no build step) by `hub.http.webclient`."""

"""One module per upstream; each knows its upstream's wire format and nothing of HTTP serving."""

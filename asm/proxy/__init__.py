"""Neural proxies of black-box synths (preset -> sound embedding) and the preset retrieval index."""

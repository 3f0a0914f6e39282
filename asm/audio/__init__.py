"""Audio: file I/O, features, metrics and pitch/onset analysis."""

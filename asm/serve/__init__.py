"""``asm serve``: a local web page over the same registry, render pool and match pipeline as the CLI.

``app`` holds the FastAPI routes (``/api/...``, OpenAPI at ``/docs``) and serves ``static/`` (plain
HTML, CSS and ES modules; no build step). ``jobs`` is the one adapter to ``asm.match``: a queue and
a worker thread that runs one match at a time. ``pictures`` turns audio into the small arrays the page
draws (waveform, spectrogram, loudness).
"""

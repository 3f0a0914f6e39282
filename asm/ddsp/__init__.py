"""DDSP timbre models: an instrument learned from its audio, played from pitch and loudness.

``features`` (f0, loudness, slicing, cache) -> ``model`` (GRU decoder) -> ``synth`` (harmonic + noise +
reverb); ``train`` fits it, ``stream`` runs it in buffers and exports it as a neutone model.
"""

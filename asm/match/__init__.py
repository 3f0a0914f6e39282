"""``asm match``: from a target sound to a preset file.

``target`` reads the target and finds the notes to play; ``pipeline.match_target`` runs one method
(model, nn, nsga2, hybrid) on one target with a shared render pool (the benchmark calls it per
target and method); ``outputs`` writes the files and the registry rows.
"""

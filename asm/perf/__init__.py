"""Speed measurements behind `asm perf ...` (renders, generation, metrics, training, matching).

Kept apart from `asm.bench`, which benchmarks matching quality.
"""

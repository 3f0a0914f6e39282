"""Benchmarks: speed figures (``asm perf``) and the mono/poly matching benchmarks."""

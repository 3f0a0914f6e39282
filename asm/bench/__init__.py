"""Matching benchmarks (mono/poly), their results and the HTML report. Speed figures live in asm.perf."""

"""Benchmark cases, one module per op (bench_<op>.py, each with cases(device, quick))."""

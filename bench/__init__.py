"""Benchmarks (bench/README.md). A package so a qcluster worker can import
`bench._naive` by dotted path; the scripts still run as `python bench/x.py`."""

"""fastgan benchmarks (docs/design.md, "Benchmarks"): `pytest bench/bench_<op>.py` or `python -m bench`; the harness is
bench/conftest.py + bench.common, the timing basics fastgan.benchmarking."""

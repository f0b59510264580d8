"""fastgan benchmarks (DESIGN.md §6): `pytest bench/bench_<op>.py` or `python -m bench`; the harness is
bench/conftest.py + bench.common, the timing basics fastgan.benchmarking."""

"""fastgan benchmarks (DESIGN.md §6): `pytest bench/bench_<op>.py`; shared helpers in bench.common."""

"""Generation runs (Django side): `planning` checks and plans a run, starts it as gpu jobs, cancels,
retries and reports progress; `worker` is what a gpu worker does with one batch; `perf` times one video
through that whole path for perf/generation.py. The backends themselves live in generation/backends/."""

"""A user's optimizer benchmarked on the paper's tasks (issue 28): `spec` reads its YAML,
`conformance` checks a declared reduction against ours, `tasks` lists the CPU-sized tasks,
`run` tunes, reruns and measures (`python -m adamrepro.benchmark OPTIMIZER.yaml`)."""

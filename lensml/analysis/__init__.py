"""Evaluation and science analyses: bootstrap statistics, scoring checkpoints under test conditions,
sensitivity
curves, the ideal-observer signal, near-real MaNGA cases with occlusion maps, and the report figures."""

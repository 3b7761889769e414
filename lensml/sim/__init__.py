"""lensml.sim."""

"""lensml.sim.backends."""

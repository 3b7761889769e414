"""lensml.sources."""

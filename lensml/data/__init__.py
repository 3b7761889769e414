"""lensml.data."""

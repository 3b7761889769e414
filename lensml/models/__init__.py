"""lensml.models."""

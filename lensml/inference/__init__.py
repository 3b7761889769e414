"""Inference on rendered lenses: a differentiable renderer (``renderer``), the linearised detection
forecast (``fisher``, ``forecast_draw``, ``pixelated``, ``position_scan``, ``refit``). Imports from the
simulator go through ``physics`` only."""

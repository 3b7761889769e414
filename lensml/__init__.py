"""lensml: does the velocity field of a strongly lensed galaxy help a CNN detect dark-matter subhalos?

Layers (each testable alone): ``lensml.data`` (MaNGA MAPS -> source tensors; datasets),
``lensml.sources`` (source-plane models), ``lensml.sim`` (lensing, subhalo, instrument),
``lensml.models`` (CNNs and the LightningModule).
"""

__version__ = "0.1.0"

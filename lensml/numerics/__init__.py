"""lensml.numerics: numerical building blocks that know nothing of lensing or sources (they import only
``lensml.jit`` and ``lensml.errors`` from the package): SIMD-friendly float32 math for the compiled kernels
(``simd_math``), the counter-based Philox generator (``philox``), and the named prior distributions of the
configs (``priors``)."""

"""Batched deflection angles in PyTorch, lenstronomy's conventions: the profiles' own functions, gathered here
for the callers of the per-function API. Each profile lives in ``lensml.sim.profiles.<name>`` (conventions,
clamps and references there and in ``lensml.sim.profiles.base``).
"""

from __future__ import annotations

from lensml.sim.profiles.base import MAX_ECC as _MAX_ECC  # noqa: F401
from lensml.sim.profiles.base import Param  # noqa: F401
from lensml.sim.profiles.epl import alpha_epl  # noqa: F401
from lensml.sim.profiles.epl import epl_series_terms as _epl_series_terms  # noqa: F401
from lensml.sim.profiles.nfw import alpha_nfw  # noqa: F401
from lensml.sim.profiles.nfw import nfw_fx as _nfw_fx  # noqa: F401
from lensml.sim.profiles.nfw import nfw_g_over_x2 as _nfw_g_over_x2  # noqa: F401
from lensml.sim.profiles.shear import alpha_shear  # noqa: F401
from lensml.sim.profiles.sie import SIE_S_SCALE as _SIE_S_SCALE  # noqa: F401
from lensml.sim.profiles.sie import alpha_sie  # noqa: F401
from lensml.sim.profiles.sis import alpha_sis  # noqa: F401
from lensml.sim.profiles.tnfw import alpha_tnfw  # noqa: F401

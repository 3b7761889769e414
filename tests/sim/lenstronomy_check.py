"""The shared check of a lens profile against lenstronomy, used by every profile's test.

``check_profile(name, kwargs)`` compares, on a grid of image positions that avoids the profile's centre:

1. the profile's torch deflection (``PROFILES[name].alpha``, float64) with ``lenstronomy.LensModel.alpha``;
2. ray shooting through the compiled kernels (``cpu_rays.source_grid_coordinates_cpu`` with an identity
   source placement, float32), and through the torch grid path (``torch_grid.source_grid_coordinates``,
   float32 and float64), with ``LensModel.ray_shooting`` - for a lens list holding the profile beside a macro
   lens and a shear (as the simulator builds it), so that the kernels' section of the profile is exercised.

``kwargs`` is one sample's lenstronomy kwargs; a batch of ``n`` copies with small per-sample changes is
checked at once (the kernels' per-sample columns).
"""

from __future__ import annotations

import numpy as np
import torch
from lenstronomy.LensModel.lens_model import LensModel

from lensml.sim.backends.cpu_rays import source_grid_coordinates_cpu
from lensml.sim.backends.cpu_terms import supports
from lensml.sim.backends.torch_grid import source_grid_coordinates
from lensml.sim.profiles import PROFILES

COORDS = np.linspace(-1.6, 1.6, 24) + 0.0123  # arcsec; the offset keeps rays off the profiles' centres
_MACRO = {"theta_E": 1.0, "e1": 0.08, "e2": -0.05, "center_x": 0.01, "center_y": -0.02}
_SHEAR = {"gamma1": 0.03, "gamma2": -0.01}


def _batch(kwargs: dict[str, float], n: int) -> dict[str, np.ndarray]:
    """n samples: ``kwargs`` with the centres shifted by a few mas per sample (integers stay)."""
    out = {}
    for k, v in kwargs.items():
        shift = 0.003 * np.arange(n) if k in ("center_x", "center_y") else 0.0
        out[k] = np.full(n, float(v)) + shift
    return out


def check_profile(
    name: str, kwargs: dict[str, float], n: int = 3, atol_f64: float = 1e-8, atol_f32: float = 2e-5
) -> None:
    """Assert that profile ``name`` with ``kwargs`` matches lenstronomy (see the module docstring)."""
    profile = PROFILES[name]
    yy, xx = np.meshgrid(COORDS, COORDS, indexing="ij")
    # 1. the deflection itself, float64
    lm = LensModel([name])
    ref = np.asarray(lm.alpha(xx.ravel(), yy.ravel(), [kwargs])).reshape(2, *xx.shape)
    x_t, y_t = (torch.as_tensor(a)[None] for a in (xx, yy))
    ax, ay = profile.alpha(x_t, y_t, **kwargs)
    np.testing.assert_allclose(ax[0].numpy(), ref[0], rtol=1e-7, atol=atol_f64)
    np.testing.assert_allclose(ay[0].numpy(), ref[1], rtol=1e-7, atol=atol_f64)
    # 2. ray shooting beside a macro lens and a shear: kernels (float32) and the torch grid path
    names = [name] if profile.role in ("macro", "shear") else ["SIE", "SHEAR", name]
    per_sample = [_batch(kwargs, n)] if len(names) == 1 else [_batch(_MACRO, n), _batch(_SHEAR, n),
                                                              _batch(kwargs, n)]
    lm = LensModel(names)
    ref = np.stack(
        [
            np.stack(
                [
                    a.reshape(xx.shape)
                    for a in lm.ray_shooting(
                        xx.ravel(), yy.ravel(), [{k: float(v[b]) for k, v in kw.items()} for kw in per_sample]
                    )
                ],
                -1,
            )
            for b in range(n)
        ]
    )
    affine, offset = np.tile(np.eye(2), (n, 1, 1)), np.zeros((n, 2))
    if profile.kernel is not None:
        assert supports(names), names
        got = source_grid_coordinates_cpu(COORDS, names, per_sample, affine, offset)
        np.testing.assert_allclose(got, ref, atol=atol_f32 * max(1.0, np.abs(ref).max()))
    for dtype, atol in ((torch.float32, atol_f32), (torch.float64, 1e-6)):
        coords = torch.as_tensor(COORDS, dtype=dtype)
        got = source_grid_coordinates(coords, names, per_sample, affine, offset).numpy()
        np.testing.assert_allclose(got, ref, atol=atol * max(1.0, np.abs(ref).max()))

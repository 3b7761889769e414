"""Compiled CPU observation step (lensml.sim.backends.cpu_observe) against the torch operations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lensml.sim.backends.cpu_observe import observe_cpu, separable_taps, supports
from lensml.sim.backends.torch_backend import block_average, observe_torch
from lensml.sim.instrument import Instrument, gaussian_psf_kernel


@pytest.mark.parametrize("supersample, fwhm", [(2, 0.12), (3, 0.2), (1, None)])
def test_matches_observe_torch(supersample, fwhm):
    kernel = gaussian_psf_kernel(fwhm, 0.06) if fwhm else None
    inst = Instrument(n_pix=30, pixel_scale_arcsec=0.06, supersample=supersample, psf_kernel=kernel)
    side = (inst.n_pix + 2 * inst.margin_pix) * supersample
    rng = np.random.default_rng(1)
    r2 = ((np.arange(side) - side / 2) ** 2)[:, None] + ((np.arange(side) - side / 3) ** 2)[None, :]
    blob = np.exp(-r2 / (0.1 * side**2))  # a bright blob on a faint, noisy background
    f = (blob * rng.uniform(0.5, 1.0, (3, side, side))).astype(np.float32)
    sub = np.stack([f, f * rng.normal(0.0, 150.0, f.shape).astype(np.float32)], axis=1)
    flux, vel, mask = observe_cpu(block_average(torch.from_numpy(sub), supersample).numpy(), inst, 0.3)
    t_flux, t_vel, t_mask = (a.numpy() for a in observe_torch(torch.from_numpy(sub), inst, 0.3))
    assert flux.shape == (3, 30, 30) and mask.dtype == bool
    np.testing.assert_allclose(flux, t_flux, rtol=2e-6, atol=1e-7 * t_flux.max())
    assert (mask != t_mask).mean() < 1e-3 and 0.05 < mask.mean() < 0.95
    both = mask & t_mask
    np.testing.assert_allclose(vel[both], t_vel[both], rtol=1e-5, atol=1e-4)
    lit = (flux > 0) & (t_flux > 0)
    np.testing.assert_allclose(vel[lit], t_vel[lit], rtol=1e-5, atol=1e-4)  # velocity outside the mask too
    assert (vel[flux <= 0] == 0).all() and (t_vel[t_flux <= 0] == 0).all()


def test_only_separable_psfs_and_full_resolution_velocity_are_supported():
    assert separable_taps(None).shape == (2, 1)
    k = gaussian_psf_kernel(0.1, 0.05)
    np.testing.assert_allclose(np.outer(*separable_taps(k)), k, atol=1e-15)
    ring = np.ones((3, 3)) / 8
    ring[1, 1] = 0.0
    assert separable_taps(ring) is None
    assert supports(Instrument(psf_kernel=k)) and not supports(Instrument(psf_kernel=ring))
    assert not supports(Instrument(psf_kernel=k, velocity_grid=32))

"""The differentiable renderer agrees with the production renderer (torch float64 and lenstronomy backends),
its disk with ``lensml.sources.disk``, and its Jacobian with finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lensml.inference import physics
from lensml.inference.renderer import build_scene, jacobian, nuisance_names, render
from lensml.inference.source_torch import disk_flux_fv
from tests.inference.conftest import make_sim


def _rel_errors(sim, draws, ref, indices):  # noqa: ANN001, ANN202
    out = []
    for i in indices:
        scene, theta = build_scene(sim, draws, i)
        f, v = (t.numpy() for t in render(scene, torch.as_tensor(theta)))
        m = ref["mask"][i]
        err_f = np.abs(f - ref["flux"][i]).max() / ref["flux"][i].max()
        err_v = np.abs(v - ref["velocity"][i])[m].max() / np.abs(ref["velocity"][i][m]).max()
        out.append((err_f, err_v))
    return np.array(out)


def test_disk_matches_sources_disk(sim_draws) -> None:  # noqa: ANN001
    sim, draws = sim_draws
    prm = {k: np.asarray(v, dtype=float) for k, v in draws.source.disk.items()}
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-0.6, 0.6, (2, len(draws), 300))
    ref_f, ref_v = physics.disk_maps(x, y, prm)
    for b in range(len(draws)):
        p = {k: torch.as_tensor(v[b], dtype=torch.float64) for k, v in prm.items()}
        f, fv = disk_flux_fv(torch.as_tensor(x[b]), torch.as_tensor(y[b]), p)
        np.testing.assert_allclose(f.numpy(), ref_f[b], rtol=1e-12, atol=0)
        np.testing.assert_allclose((fv / f).numpy(), ref_v[b], rtol=1e-10, atol=1e-9)


def test_agrees_with_torch_backend_float64(sim_draws) -> None:  # noqa: ANN001
    sim, draws = sim_draws
    ref = sim.render_noiseless(draws, "test")
    err = _rel_errors(sim, draws, ref, range(len(draws)))
    assert err.max() < 1e-4, err


def test_agrees_with_lenstronomy_backend() -> None:
    sim = make_sim(["sim=lenstronomy"])
    draws = sim.draw_batch(0, "test", np.arange(2))
    ref = sim.render_noiseless(draws, "test")
    err = _rel_errors(sim, draws, ref, range(2))
    assert err.max() < 1e-4, err


def test_analytic_source_mode_close_to_grid(sim_draws) -> None:  # noqa: ANN001
    """The continuous disk at the traced positions differs from the production grid sampling only by the
    grid's interpolation error (percent level at most) for disks without a bulge. (A Sersic n ~ 3 bulge of
    R_e ~ 0.03 arcsec has a cusp the production grid does not resolve: up to ~90 % of the image peak.)"""
    sim, draws = sim_draws
    i = int(np.flatnonzero(draws.source.disk["bulge_amp"] == 0)[0])
    scene_g, theta = build_scene(sim, draws, i, source_mode="grid")
    scene_a, _ = build_scene(sim, draws, i, source_mode="analytic")
    fg, _ = render(scene_g, torch.as_tensor(theta))
    fa, _ = render(scene_a, torch.as_tensor(theta))
    assert float((fg - fa).abs().max() / fg.max()) < 3e-2


@pytest.mark.parametrize("mode", ["grid", "analytic"])
def test_jacobian_matches_finite_differences(sim_draws, mode: str) -> None:  # noqa: ANN001
    """jacfwd w.r.t. every lens, subhalo and source parameter (clumps and bulge included) against central
    differences (relative step 1e-6), column by column, in the norm of the column."""
    sim, draws = sim_draws
    i = int(np.argmax((draws.source.disk["clump_amp"] > 0).sum(axis=1)))
    scene, theta = build_scene(sim, draws, i, source_mode=mode)
    names = nuisance_names(scene, ["macro", "subhalo", "source", "bulge", "clumps"])
    assert scene.n_clumps >= 1 and len(names) >= 7 + 5 + 9 + 3 + 4
    out, jac = jacobian(scene, theta, names)
    keep = out[0] > 1e-4 * float(out[0].max())
    for j, name in enumerate(names):
        k = scene.names.index(name)
        h = 1e-6 * max(abs(theta[k]), 1e-2)
        plus, minus = theta.copy(), theta.copy()
        plus[k] += h
        minus[k] -= h
        fd = (
            torch.stack(render(scene, torch.as_tensor(plus)))
            - torch.stack(render(scene, torch.as_tensor(minus)))
        ) / (2 * h)
        col = jac[..., j]
        for c in range(2):  # flux, velocity (velocity compared where the flux is not negligible)
            a, b = col[c][keep], fd[c][keep]
            # a zero derivative (the velocity w.r.t. the amplitude) is compared in units of the data
            scale = float(b.norm()) + float(a.norm()) + 1e-9 * float(out[c][keep].norm()) / h
            assert float((a - b).norm()) < 2e-3 * scale, (name, c, float((a - b).norm()) / scale)
            if float(b.norm()) > 0.5 * scale:  # the check can fail: a 1 % error in a column would be caught
                assert float((1.01 * a - b).norm()) > 2e-3 * scale, name

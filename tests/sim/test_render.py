"""Physics of the two-channel renderer (lensml.sim.render), both backends, against analytic identities."""

from __future__ import annotations

import numpy as np
import pytest

from lensml.sim.instrument import Instrument, gaussian_psf_kernel
from lensml.sim.render import SourceGrids, render_lensed
from lensml.sources.disk import disk_maps

#: backend id -> render_lensed options: the torch backend with its compiled CPU kernels (default on the CPU in
#: float32) and with torch operations only, and the lenstronomy reference
OPTIONS = {
    "torch": dict(backend="torch"),
    "torch-ops": dict(backend="torch", cpu_kernels=False),
    "lenstronomy": dict(backend="lenstronomy"),
}
BACKENDS = tuple(OPTIONS)
LENSES = ["SIE", "SHEAR", "TNFW"]


def _kwargs(b: int, alpha_rs: float = 0.02, sub_x: float = 0.95) -> list[dict[str, np.ndarray]]:
    full = np.ones(b)
    return [
        dict(
            theta_E=1.0 * full,
            e1=0.12 * full,
            e2=-0.05 * full,
            center_x=0.02 * full,
            center_y=-0.01 * full,
        ),
        dict(gamma1=0.03 * full, gamma2=-0.01 * full),
        dict(
            Rs=0.05 * full,
            alpha_Rs=alpha_rs * full,
            r_trunc=0.25 * full,
            center_x=sub_x * full,
            center_y=0.1 * full,
        ),
    ]


def _disk_grids(
    b: int = 2, m: int = 96, half: float = 1.0, velocity: np.ndarray | None = None
) -> SourceGrids:
    """Exponential disks (one with a clump) on m x m grids of half-size ``half`` arcsec."""
    rng = np.random.default_rng(1)
    prm = {
        "center_x": rng.uniform(-0.1, 0.1, b),
        "center_y": rng.uniform(-0.1, 0.1, b),
        "inclination_deg": np.full(b, 55.0),
        "position_angle_deg": rng.uniform(0, 180, b),
        "scale_radius_arcsec": np.full(b, 0.15),
        "v_max_kms": np.full(b, 220.0),
        "r_turn_arcsec": np.full(b, 0.08),
        "v_sys_kms": np.zeros(b),
        "sigma0_kms": np.full(b, 50.0),
        "bulge_amp": np.full(b, 0.3),
        "bulge_r_eff_arcsec": np.full(b, 0.04),
        "bulge_sersic_n": np.full(b, 2.0),
        "clump_r_arcsec": np.full((b, 1), 0.2),
        "clump_phi_deg": np.full((b, 1), 40.0),
        "clump_amp": np.full((b, 1), 0.6),
        "clump_sigma_arcsec": np.full((b, 1), 0.03),
    }
    u = (np.arange(m) + 0.5) / m * 2 - 1
    x = prm["center_x"][:, None, None] + half * u[None, None, :] + 0 * u[None, :, None]
    y = prm["center_y"][:, None, None] + half * u[None, :, None] + 0 * u[None, None, :]
    flux, vel = disk_maps(x, y, prm)
    if velocity is not None:
        vel = np.broadcast_to(velocity, vel.shape).copy()
    return SourceGrids(flux, vel, prm["center_x"], prm["center_y"], np.full(b, half))


def _instrument(**kw) -> Instrument:
    base = dict(
        n_pix=48, pixel_scale_arcsec=0.06, supersample=2, psf_kernel=gaussian_psf_kernel(0.12, 0.06)
    )
    base.update(kw)
    return Instrument(**base)


@pytest.mark.parametrize("backend", ["torch", "torch-ops"])
def test_backends_agree_to_1e_4_of_peak(backend):
    src, inst = _disk_grids(3), _instrument()
    a = render_lensed(src, LENSES, _kwargs(3), inst, backend="lenstronomy")
    b = render_lensed(src, LENSES, _kwargs(3), inst, **OPTIONS[backend])
    peak = a["flux"].max(axis=(1, 2), keepdims=True)
    assert np.abs(a["flux"] - b["flux"]).max() / peak.min() < 1e-4
    both = a["mask"] & b["mask"]
    assert (a["mask"] != b["mask"]).mean() < 1e-3  # only pixels exactly at the threshold may differ
    vpeak = np.abs(a["velocity"]).max()
    assert np.abs(a["velocity"] - b["velocity"])[both].max() < 1e-4 * vpeak
    assert vpeak > 50  # a real rotation field, not zeros


def test_backends_agree_for_epl_and_velocity_grid():
    src = _disk_grids(2)
    inst = _instrument(velocity_grid=24)
    kw = _kwargs(2)
    kw[0]["gamma"] = np.array([1.85, 2.15])
    a = render_lensed(src, ["EPL", "SHEAR", "TNFW"], kw, inst, backend="lenstronomy")
    b = render_lensed(src, ["EPL", "SHEAR", "TNFW"], kw, inst, backend="torch")
    assert np.abs(a["flux"] - b["flux"]).max() < 1e-4 * a["flux"].max()
    both = a["mask"] & b["mask"]
    assert np.abs(a["velocity"] - b["velocity"])[both].max() < 1e-4 * np.abs(a["velocity"]).max()


@pytest.mark.parametrize("backend", BACKENDS)
def test_uniform_source_gives_uniform_image(backend):
    # surface brightness is conserved by lensing; the PSF margin keeps the edges right
    b, m = 2, 16
    src = SourceGrids(np.full((b, m, m), 2.5), np.zeros((b, m, m)), 0.0, 0.0, 50.0)
    out = render_lensed(src, LENSES, _kwargs(b, alpha_rs=0.05), _instrument(), **OPTIONS[backend])
    np.testing.assert_allclose(out["flux"], 2.5, rtol=2e-6)
    assert out["mask"].all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("velocity_grid", [None, 16])
def test_constant_velocity_is_exact_wherever_there_is_flux(backend, velocity_grid):
    """The velocity is rendered wherever the flux is positive, not cut by the (noiseless) mask (issue 10)."""
    src = _disk_grids(2, velocity=np.float64(-137.25))
    out = render_lensed(
        src, LENSES, _kwargs(2), _instrument(velocity_grid=velocity_grid), **OPTIONS[backend]
    )
    lit = out["flux"] > 0
    assert out["mask"].sum() > 100 and (lit & ~out["mask"]).sum() > 100
    np.testing.assert_allclose(out["velocity"][lit], -137.25, rtol=2e-6)
    assert np.all(out["velocity"][~lit] == 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_mass_subhalo_is_identical_to_none(backend):
    src, inst = _disk_grids(2), _instrument()
    with_zero = render_lensed(src, LENSES, _kwargs(2, alpha_rs=0.0), inst, **OPTIONS[backend])
    without = render_lensed(src, LENSES[:2], _kwargs(2)[:2], inst, **OPTIONS[backend])
    with_sub = render_lensed(src, LENSES, _kwargs(2, alpha_rs=0.02), inst, **OPTIONS[backend])
    for key in ("flux", "velocity", "mask"):
        np.testing.assert_array_equal(with_zero[key], without[key])
    assert np.abs(with_sub["flux"] - without["flux"]).max() > 1e-3 * without["flux"].max()


@pytest.mark.parametrize("backend", BACKENDS)
def test_flipping_source_velocity_flips_lensed_velocity_exactly(backend):
    src, inst = _disk_grids(2), _instrument(velocity_grid=24)
    flipped = SourceGrids(src.flux, -src.velocity_kms, src.center_x, src.center_y, src.half_size_arcsec)
    a = render_lensed(src, LENSES, _kwargs(2), inst, **OPTIONS[backend])
    b = render_lensed(flipped, LENSES, _kwargs(2), inst, **OPTIONS[backend])
    np.testing.assert_array_equal(a["flux"], b["flux"])
    np.testing.assert_array_equal(a["velocity"], -b["velocity"])
    assert np.abs(a["velocity"]).max() > 50


@pytest.mark.parametrize("backend", BACKENDS)
def test_sis_ring_sits_at_theta_e(backend):
    theta_e, m, half = 0.9, 128, 0.3
    u = (np.arange(m) + 0.5) / m * 2 - 1
    xx, yy = np.meshgrid(half * u, half * u)
    flux = np.exp(-(xx**2 + yy**2) / (2 * 0.03**2))[None]
    src = SourceGrids(flux, np.zeros_like(flux), 0.0, 0.0, half)
    inst = Instrument(
        n_pix=64, pixel_scale_arcsec=0.05, supersample=4, psf_kernel=gaussian_psf_kernel(0.1, 0.05)
    )
    out = render_lensed(
        src,
        ["SIS"],
        [dict(theta_E=np.array([theta_e]), center_x=np.zeros(1), center_y=np.zeros(1))],
        inst,
        **OPTIONS[backend],
    )
    f = out["flux"][0]
    c = (np.arange(64) - 31.5) * 0.05
    x, y = np.meshgrid(c, c)
    r = np.hypot(x, y)
    assert abs((f * x).sum() / f.sum()) < 0.005 and abs((f * y).sum() / f.sum()) < 0.005
    assert abs((f * r).sum() / f.sum() - theta_e) < 0.01  # a fifth of a pixel
    # azimuthally averaged profile peaks at theta_E
    bins = np.arange(0.2, 1.5, 0.05)
    prof = np.array([f[(r >= lo) & (r < lo + 0.05)].mean() for lo in bins])
    assert abs(bins[np.argmax(prof)] + 0.025 - theta_e) <= 0.05


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotation_and_flip_move_both_channels(backend):
    # identity lens (theta_E = 0): the rendered image is the placed template itself
    m = 32
    flux = np.zeros((1, m, m))
    flux[0, 15:17, 24:28] = 1.0  # bright bar at +x
    vel = np.where(flux > 0, 100.0, 0.0)
    lens = [dict(theta_E=np.zeros(1), center_x=np.zeros(1), center_y=np.zeros(1))]
    inst = Instrument(n_pix=32, pixel_scale_arcsec=0.05, supersample=2, psf_kernel=None)
    kw = dict(**OPTIONS[backend], mask_frac_of_peak=0.5)

    def centroid(src: SourceGrids) -> tuple[float, float]:
        out = render_lensed(src, ["SIS"], lens, inst, **kw)
        f = out["flux"][0]
        c = (np.arange(32) - 15.5) * 0.05
        x, y = np.meshgrid(c, c)
        assert np.allclose(out["velocity"][0][out["mask"][0]], 100.0, rtol=1e-5)
        return (f * x).sum() / f.sum(), (f * y).sum() / f.sum()

    x0, y0 = centroid(SourceGrids(flux, vel, 0.0, 0.0, 0.8))
    assert x0 > 0.3 and abs(y0) < 0.02
    x1, y1 = centroid(SourceGrids(flux, vel, 0.0, 0.0, 0.8, rotation_deg=90.0))  # counter-clockwise
    assert abs(x1) < 0.02 and y1 == pytest.approx(x0, abs=0.02)
    x2, y2 = centroid(SourceGrids(flux, vel, 0.0, 0.0, 0.8, flip=True))  # mirror x
    assert x2 == pytest.approx(-x0, abs=0.02) and abs(y2) < 0.02


@pytest.mark.parametrize("backend", BACKENDS)
def test_velocity_matches_lenstronomy_tracer_model(backend):
    """Independent reference: lenstronomy's TracerModelSource renders conv(f v) / conv(f) itself."""
    from lenstronomy.LightModel.light_model import LightModel

    from lensml.sim.backends.lenstronomy_backend import tracer_image_model

    n, pix, sup = 48, 0.06, 2
    kernel = gaussian_psf_kernel(0.15, pix)
    kw_lens = [
        dict(theta_E=1.0, e1=0.1, e2=-0.05, center_x=0.0, center_y=0.0),
        dict(gamma1=0.02, gamma2=0.01),
        dict(Rs=0.05, alpha_Rs=0.03, r_trunc=0.25, center_x=0.9, center_y=0.3),
    ]
    light = LightModel(["GAUSSIAN_ELLIPSE"])
    kw_light = [dict(amp=10.0, sigma=0.12, e1=0.2, e2=0.0, center_x=0.05, center_y=0.03)]
    tracer = LightModel(["GAUSSIAN"])  # a smooth 'velocity' field: 250 exp(-r^2 / 2 0.25^2) - 50 (km/s)
    kw_tracer = [dict(amp=250.0 * 2 * np.pi * 0.25**2, sigma=0.25, center_x=0.25, center_y=-0.1)]
    model = tracer_image_model(Instrument(n, pix, sup, kernel), LENSES, light, tracer)
    v_ref = model.tracer_model(kw_tracer, kw_lens, kw_light) - 50.0
    f_ref = (
        model.image(kwargs_lens=kw_lens, kwargs_source=kw_light) / pix**2
    )  # per pixel -> per arcsec^2

    m, half = 400, 1.0
    u = (np.arange(m) + 0.5) / m * 2 - 1
    xx, yy = np.meshgrid(half * u, half * u)
    f_src = light.surface_brightness(xx.ravel(), yy.ravel(), kw_light).reshape(m, m)
    v_src = tracer.surface_brightness(xx.ravel(), yy.ravel(), kw_tracer).reshape(m, m) - 50.0
    src = SourceGrids(f_src[None], v_src[None], 0.0, 0.0, half)
    kw_batch = [{k: np.array([v]) for k, v in kw.items()} for kw in kw_lens]
    out = render_lensed(src, LENSES, kw_batch, Instrument(n, pix, sup, kernel), 0.05, **OPTIONS[backend])
    inner = out["mask"][0].copy()
    inner[:5], inner[-5:], inner[:, :5], inner[:, -5:] = (
        False,
        False,
        False,
        False,
    )  # lenstronomy zero-pads
    assert inner.sum() > 100
    err = np.abs(out["velocity"][0] - v_ref)[inner]
    assert err.max() < 0.01 * np.abs(v_ref[inner]).max()
    assert np.abs(out["flux"][0] - f_ref)[inner].max() < 0.01 * f_ref.max()
    assert np.ptp(v_ref[inner]) > 50  # the field varies: a broken weighting would show
    # and the naive "blur the velocity map" is measurably wrong on the same pixels
    from scipy.signal import fftconvolve

    naive_sub = tracer.surface_brightness(*_sub_coords(n, pix, sup, kw_lens), kw_tracer) - 50.0
    naive = fftconvolve(naive_sub.reshape(n, sup, n, sup).mean(axis=(1, 3)), kernel, mode="same")
    assert np.abs(naive - v_ref)[inner].max() > 5 * err.max()


def _sub_coords(n: int, pix: float, sup: int, kw_lens: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    from lenstronomy.LensModel.lens_model import LensModel

    c = (np.arange(n * sup) + 0.5) * pix / sup - n * pix / 2
    x, y = np.meshgrid(c, c)
    return LensModel(LENSES).ray_shooting(x.ravel(), y.ravel(), kw_lens)

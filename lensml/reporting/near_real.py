"""The ``near_real`` study's section: P(subhalo) of the trained models on a lensed real MaNGA galaxy with the
subhalo on / off the arc, and occlusion maps (``near_real_<plateifu>.npz`` beside the summaries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lensml.analysis import plots
from lensml.analysis.markdown import md_table
from lensml.reporting.core import Report


def response(g: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """Per model variant of one galaxy: (P(subhalo) without a subhalo, max |ΔP| over the subhalo cases)."""
    return {
        v: (e["none"]["mean"], max(abs(e[c]["mean"] - e["none"]["mean"]) for c in e if c != "none"))
        for v, e in g["variants"].items()
    }


def render(r: Report) -> None:
    """v1's section (study ``near_real``: the seed CNNs of ``headline``)."""
    _render(r, "near_real", "Study 6 — near-real MaNGA cases")


def render_v2(r: Report) -> None:
    """v2's section (study ``near_real_resnet``: the residual nets of ``headline_resnet_long``); the runs of
    that study that did not learn are named first."""
    from lensml.reporting.ablations_v2 import failure_cause, not_learning

    source = ((r.s.get("near_real_resnet") or {}).get("runs_from") or {}).get("study", "headline_resnet_long")
    runs = (r.s.get(source) or {}).get("runs") or {}
    dead = not_learning(runs)
    note = (f"The {', '.join(dead)} run(s) of `{source}` did not learn (see its section): their responses "
            "below come from a network with no detection skill on its own test distribution (validation AUC "
            "0.5), so they say nothing about the velocity field. " + failure_cause(runs, dead) + "\n"
            ) if dead else ""
    title = "Near-real (v2): the real MaNGA galaxy behind a lens, the v2 detectors"
    _render(r, "near_real_resnet", title, note)


def _render(r: Report, key: str, title: str, note: str = "") -> None:
    """The section of study ``key``: P(subhalo) per case and model, and the occlusion figure per galaxy."""
    s = r.s.get(key)
    if not s:
        return
    nr = s["near_real"]
    spec = nr["spec"]
    r.section(title, s)
    if note:
        r.add(note)
    lens = spec["lens"]
    ms = spec["mass_msun"] if isinstance(spec["mass_msun"], list) else [spec["mass_msun"]]
    r.add(
        f"Lens: SIE theta_E = {lens['theta_E']} arcsec, e1 = {lens['e1']}, e2 = {lens['e2']}, shear "
        f"({lens['gamma1']}, {lens['gamma2']}); source span {spec['source_size_arcsec']} arcsec at offset "
        f"({spec['source_x_arcsec']}, {spec['source_y_arcsec']}) arcsec; subhalo TNFW M200 = "
        f"{', '.join(f'{float(m):.0e}' for m in ms)} M_sun. P(subhalo): mean over "
        f"{nr['occlusion']['n_noise']} noise realisations (the same ones for every case) and the seeds "
        "(± mean per-seed std over noise realisations).\n"
    )
    cases = nr.get("cases") or ["none", "on_arc", "off_arc"]
    for plateifu, g in nr["galaxies"].items():
        pos = g["subhalo_positions_arcsec"]
        title = (
            f"**{plateifu}** (subhalo on the arc at ({pos['on_arc']['x']:.2f}, {pos['on_arc']['y']:.2f}), "
            f"off the arc at ({pos['off_arc']['x']:.2f}, {pos['off_arc']['y']:.2f}) arcsec)\n"
        )
        moved = [c for c in cases if c != "none"]
        rows = [
            [
                v,
                f"{e['none']['mean']:.4f} ± {e['none']['std_noise']:.1e}",
                *(f"{e[c]['mean'] - e['none']['mean']:+.1e}" for c in moved),
            ]
            for v, e in g["variants"].items()
        ]
        header = ["model", "P(sub): none", *(f"ΔP: {c}" for c in moved)]
        r.add(title + "\n" + md_table(header, rows) + "\n")
        r.add(
            "ΔP = P(subhalo | case) − P(subhalo | no subhalo), same noise realisations."
            " Differences far below "
            "the noise spread, or a P(sub) that hardly moves at all, mean the network does not respond to "
            "this subhalo.\n"
        )
        p = r.summary_dir / g.get("arrays", f"near_real_{plateifu}.npz")
        if p.exists():
            with np.load(p) as z:
                arr = {k: z[k].astype(np.float32) for k in z.files}
            heavy = [c for c in cases if c != "none"][-2:]
            fig = plots.near_real_figure(
                arr,
                pos,
                list(g["variants"]),
                heavy,
                float(spec.get("pixel_scale_arcsec", 0.05)),
                nr["occlusion"]["stride_pix"],
                nr["occlusion"]["patch_pix"],
            )
            r.fig(f"{key}_{plateifu}.png", fig, f"near-real {plateifu}")
    occ = nr["occlusion"]
    r.add(
        "Figure: the lensed MaNGA galaxy (one noise realisation) with the subhalo (cyan +) of the heaviest "
        f"mass on and off the arc, and occlusion maps: a {occ['patch_pix']}x{occ['patch_pix']}-pixel patch "
        f"(stride {occ['stride_pix']}) set to 0 in the normalised input (all channels); colour = P(subhalo) "
        "without the patch minus with it (positive: the patch supported 'subhalo'), averaged over "
        f"{occ.get('n_noise_occlusion', occ['n_noise'])} noise realisations and the seeds.\n"
    )

"""The on-disk dataset cache: shards of rendered samples plus a ``manifest.json``.

Layout (``<cache_dir>`` defaults to ``data/sim_dataset``)::

    manifest.json          format, package version, config (physics groups + data seed), config_hash,
                           counts per split, shard_size, shard list with sha256, complete flag
    train_00000.npz        samples [0, shard_size) of split train; keys = SAMPLE_KEYS + "index" (+ "cube"
                           with instrument.n_velocity_channels > 0: N_v x N x N float32 per sample)
    train_00001.npz        ...
    val_00000.npz, test_00000.npz, ...

Every shard is written under a temporary name and renamed (``lensml.atomic_io``), so a crash never leaves a
half shard under a final name; temporary files of killed writers are swept by the next run. ``generate_cache``
writes the manifest first with ``complete: false``, skips shards that already exist, load cleanly and match
the sha256 the previous run recorded (resume after a crash), and marks the manifest complete at the end. A
re-run that finds the cache complete, at least as large as asked and every shard intact writes nothing (a
run reading the cache never sees it incomplete); do not extend or repair a cache that a run is reading. It
never shrinks a cache of the same config: asking for fewer samples keeps the larger cache (runs read a
prefix); after a killed build only the finished shards are kept (a smaller request renders only what it
needs); ``overwrite=true`` rebuilds at exactly the requested sizes. A manifest that is not valid JSON is
refused (the shards' config is then unknown) unless ``overwrite=true``.
``CacheReader`` refuses a cache that is incomplete, was made from another config (hash mismatch), holds too
few samples, or whose shards fail their checksum (``verify_shards``: all of a run's shards, at its start).
Samples are identical to the on-the-fly ones: shard rows are
``Simulator.sample_batch(seed, split, indices)`` rows, stored as returned (float32 maps, km/s velocity).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lensml import __version__
from lensml.atomic_io import save_npz, sweep_stale_temps, write_json
from lensml.errors import DataError
from lensml.sim.simulator import PHYSICS_GROUPS, SAMPLE_KEYS, Simulator  # groups that fix the samples

log = logging.getLogger(__name__)

FORMAT = "lensml-sim-cache"
FORMAT_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: keys of the ``sim`` group that change speed only, not the samples (left out of the hash)
RUNTIME_SIM_KEYS: frozenset[str] = frozenset({"device", "num_threads", "chunk_size", "batch_size"})
#: ``instrument`` keys of the IFU cube: left out of the hash while ``instrument.n_velocity_channels`` is 0
#: (the samples are those of a config without them: caches made before the cube existed stay valid)
CUBE_INSTRUMENT_KEYS: frozenset[str] = frozenset(
    {"n_velocity_channels", "channel_width_kms", "velocity_range_kms"}
)
#: sample keys a shard holds besides ``SAMPLE_KEYS`` when the simulator returns them (the IFU ``cube``)
OPTIONAL_SAMPLE_KEYS: tuple[str, ...] = ("cube",)
MANIFEST = "manifest.json"


def cache_config(sim_cfg: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The part of the config that determines the samples: physics groups (resolved) and the data seed."""
    from lensml.sim.simulator import SAMPLES_VERSION

    # the draw scheme's version: a cache from an older simulator is refused, not silently mixed
    out: dict[str, Any] = {"seed": int(seed), "samples_version": SAMPLES_VERSION}
    for group in PHYSICS_GROUPS:
        node = sim_cfg.get(group) if hasattr(sim_cfg, "get") else None
        node = _plain(node)
        if group == "sim" and isinstance(node, dict):
            node = {k: v for k, v in node.items() if k not in RUNTIME_SIM_KEYS}
        if group == "instrument" and isinstance(node, dict) and not node.get("n_velocity_channels"):
            node = {k: v for k, v in node.items() if k not in CUBE_INSTRUMENT_KEYS}
        out[group] = node
    return out


def physics_config(cfg: Any) -> Any:
    """The resolved physics groups of a composed config (what ``build_simulator`` reads) as a DictConfig."""
    from omegaconf import OmegaConf

    node = {g: OmegaConf.to_container(cfg[g], resolve=True) for g in PHYSICS_GROUPS if g in cfg}
    return OmegaConf.create(node)


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 (hex, first 16 characters) of the canonical JSON of ``config``."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def shard_name(split: str, k: int) -> str:
    return f"{split}_{k:05d}.npz"


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """[start, stop) index ranges of the shards of a split of ``n`` samples."""
    return [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _plain(node: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(node, DictConfig | ListConfig):
            return OmegaConf.to_container(node, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return node


def _load_shard(path: Path, start: int, stop: int) -> dict[str, np.ndarray]:
    """Load one shard and check its keys and row indices; ``DataError`` naming the file otherwise."""
    fix = "re-run `python -m lensml.make_dataset` with the same config (it re-renders bad shards)"
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:  # zip/CRC/format errors all mean the same thing here
        raise DataError(f"cache shard {path} is unreadable or corrupt ({exc}); {fix}") from exc
    missing = [k for k in (*SAMPLE_KEYS, "index") if k not in data]
    if missing:
        raise DataError(f"cache shard {path} lacks keys {missing}; {fix}")
    if not np.array_equal(data["index"], np.arange(start, stop)):
        raise DataError(f"cache shard {path} does not hold samples [{start}, {stop}); {fix}")
    return data


def generate_cache(
    simulator: Simulator,
    config: Mapping[str, Any],
    counts: Mapping[str, int],
    out_dir: str | Path,
    shard_size: int = 1024,
    render_batch: int = 256,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Render ``counts[split]`` samples per split into shards in ``out_dir`` (resumes); return the manifest.

    ``config`` is ``cache_config(...)`` (its ``seed`` seeds the samples). ``progress(n)`` is called after
    each rendered or verified chunk with the number of samples it covered; ``on_total(n)`` once with the
    number of samples the cache will hold (more than requested when a larger cache is kept).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(out)  # leftovers of a writer killed mid-shard
    chash = config_hash(config)
    manifest_path = out / MANIFEST
    counts = {s: int(counts.get(s, 0)) for s in SPLITS}
    known_sha: dict[str, str] = {}  # shard file -> sha256 recorded by the previous run
    old_shards: dict[str, Any] = {}
    old = _read_manifest(manifest_path, overwrite) if manifest_path.exists() else None
    if old is None and manifest_path.exists():  # not valid JSON, overwrite=true
        _remove_shards(out)
    elif old is not None:
        if old.get("config_hash") != chash or old.get("shard_size") != shard_size:
            if not overwrite:
                raise DataError(
                    f"{manifest_path} belongs to another config (hash {old.get('config_hash')}, shard_size "
                    f"{old.get('shard_size')}; requested {chash}, {shard_size}); choose another "
                    "data.cache_dir or pass overwrite=true to replace it"
                )
            _remove_shards(out)
        elif overwrite:
            _remove_shards(out)  # same config, but the user asked for exactly these sizes from scratch
        else:
            counts = _keep_larger(out, old, counts, shard_size)
            old_shards = old.get("shards", {})
            known_sha = {e["file"]: e["sha256"] for es in old_shards.values() for e in es}
            if _intact(out, old, counts, shard_size):  # nothing to do: leave the manifest alone
                log.info("cache %s is complete with %s samples; nothing to render", out, counts)
                if on_total:
                    on_total(sum(counts.values()))
                if progress:
                    progress(sum(counts.values()))
                return old
    seed = int(config["seed"])
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config_hash": chash,
        "config": dict(config),
        "counts": counts,
        "shard_size": int(shard_size),
        "sample_keys": list(SAMPLE_KEYS),
        "shards": old_shards,  # kept while incomplete: a run killed now still knows the checksums
        "complete": False,
    }
    write_json(manifest_path, manifest)
    if on_total:
        on_total(sum(counts.values()))
    shards: dict[str, list[dict[str, Any]]] = {}
    for split in SPLITS:
        entries = []
        for k, (start, stop) in enumerate(shard_ranges(manifest["counts"][split], shard_size)):
            path = out / shard_name(split, k)
            if path.exists():
                try:
                    if path.name in known_sha and file_sha256(path) != known_sha[path.name]:
                        raise DataError(f"{path} fails its sha256 check (corrupt or replaced)")
                    _load_shard(path, start, stop)
                    log.info("resume: keeping %s", path)
                    entries.append(_entry(path, start, stop))
                    if progress:
                        progress(stop - start)
                    continue
                except DataError as exc:
                    log.warning("re-rendering %s: %s", path, exc)
            parts = []
            for s in range(start, stop, render_batch):
                idx = np.arange(s, min(s + render_batch, stop))
                parts.append(simulator.sample_batch(seed, split, idx))
                if progress:
                    progress(len(idx))
            keys = (*SAMPLE_KEYS, *(k for k in OPTIONAL_SAMPLE_KEYS if k in parts[0]))
            data = {key: np.concatenate([np.asarray(p[key]) for p in parts]) for key in keys}
            data["source_id"] = data["source_id"].astype(str)
            save_npz(path, index=np.arange(start, stop, dtype=np.int64), **data)
            entries.append(_entry(path, start, stop))
        shards[split] = entries
    manifest["shards"], manifest["complete"] = shards, True
    write_json(manifest_path, manifest)
    return manifest


class CacheReader:
    """Reads a cache made by ``generate_cache`` after checking it matches the requested config.

    Args:
        cache_dir: folder holding ``manifest.json`` and the shards.
        config: ``cache_config(...)`` of the requested run; must hash to the manifest's ``config_hash``.
        counts: samples needed per split; the cache must hold at least as many.
        verify: check each shard's sha256 when loading it.
        make_cmd: the ``make_dataset`` command that (re-)renders this cache, quoted in error messages.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        config: Mapping[str, Any],
        counts: Mapping[str, int],
        verify: bool = True,
        make_cmd: str | None = None,
    ) -> None:
        self.dir = Path(cache_dir)
        self.verify = verify
        path = self.dir / MANIFEST
        make = f"`{make_cmd}`" if make_cmd else "`python -m lensml.make_dataset` with the same overrides"
        self._make = make
        if not path.exists():
            raise DataError(f"no dataset cache at {self.dir} ({MANIFEST} missing); create it with {make}")
        try:
            self.manifest = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            rebuild = f"`{make_cmd} overwrite=true`" if make_cmd else f"{make} plus overwrite=true"
            raise DataError(
                f"{path} is not valid JSON ({exc}); re-create the cache (all shards re-rendered): {rebuild}"
            ) from exc
        if self.manifest.get("format") != FORMAT or self.manifest.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{path} is not a {FORMAT} v{FORMAT_VERSION} manifest; re-create it with {make}")
        if make_cmd and "shard_size=" not in make_cmd:  # make_dataset refuses another shard size
            self._make = make = f"`{make_cmd} shard_size={self.manifest.get('shard_size')}`"
        if not self.manifest.get("complete"):
            raise DataError(f"dataset cache {self.dir} is incomplete (generation stopped); finish it: {make}")
        want = config_hash(config)
        if self.manifest.get("config_hash") != want:
            diff = _diff_keys(self.manifest.get("config", {}), dict(config))
            raise DataError(
                f"dataset cache {self.dir} was made for another config (manifest hash "
                f"{self.manifest.get('config_hash')}, requested {want}; differing keys: {diff or '?'}). "
                f"Use data.mode=onthefly, point data.cache_dir elsewhere, or re-create it with {make}"
            )
        for split, n in counts.items():
            have = int(self.manifest["counts"].get(split, 0))
            if n > have:
                raise DataError(
                    f"dataset cache {self.dir} holds {have} {split} samples but data.n_{split}={n}; "
                    f"lower data.n_{split} or re-create it with {make}"
                )
        self._splits: dict[str, dict[str, np.ndarray]] = {}

    def load_split(self, split: str, n: int) -> dict[str, np.ndarray]:
        """The first ``n`` samples of ``split`` as arrays (loaded once per process, kept in memory)."""
        if split not in self._splits or len(self._splits[split]["index"]) < n:
            parts = []
            for entry in self._entries(split, n):
                path = self._check_shard(entry, self.verify)
                parts.append(_load_shard(path, entry["start"], entry["stop"]))
            self._splits[split] = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return self._splits[split]

    def verify_shards(self, counts: Mapping[str, int]) -> int:
        """Check that every shard the first ``counts[split]`` samples need exists and matches its sha256.

        Meant for the start of a run, before any training step; returns the number of shards checked.
        """
        checked = 0
        for split, n in counts.items():
            for entry in self._entries(split, n):
                self._check_shard(entry, True)
                checked += 1
        return checked

    def _entries(self, split: str, n: int) -> list[dict[str, Any]]:
        return [e for e in self.manifest["shards"][split] if e["start"] < n]

    def _check_shard(self, entry: Mapping[str, Any], verify: bool) -> Path:
        path = self.dir / entry["file"]
        fix = f"re-render it with {self._make}"
        if not path.exists():
            raise DataError(f"cache shard {path} is missing; {fix}")
        if verify and file_sha256(path) != entry["sha256"]:
            raise DataError(
                f"cache shard {path} fails its sha256 check (corrupt or replaced); {fix} "
                "(it re-renders only the bad shards)"
            )
        return path

    def get(self, split: str, indices: np.ndarray, n: int) -> dict[str, np.ndarray]:
        """Samples ``indices`` of ``split`` (``n`` = split size in use)."""
        data = self.load_split(split, n)
        return {k: data[k][indices] for k in (*SAMPLE_KEYS, *OPTIONAL_SAMPLE_KEYS) if k in data}

    def __getstate__(self) -> dict[str, Any]:  # workers load their own copy, lazily
        state = self.__dict__.copy()
        state["_splits"] = {}
        return state


def _read_manifest(path: Path, overwrite: bool) -> dict[str, Any] | None:
    """The manifest at ``path``; if it is not valid JSON: None with ``overwrite``, else ``DataError``."""
    try:
        old = json.loads(path.read_text())
        if isinstance(old, dict):
            return old
        problem = f"holds a JSON {type(old).__name__}, not a manifest"
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problem = f"is not valid JSON ({exc})"
    if overwrite:
        log.warning("%s %s; overwrite=true: rebuilding the cache from scratch", path, problem)
        return None
    raise DataError(
        f"{path} {problem}: the config and checksums of the shards beside it are unknown, so they cannot be "
        "reused; pass overwrite=true to rebuild the cache (every shard re-rendered), or choose another "
        "data.cache_dir"
    )


def _intact(out: Path, old: Mapping[str, Any], counts: Mapping[str, int], shard_size: int) -> bool:
    """True if ``old`` is complete, holds exactly ``counts``, every shard there with its recorded sha256."""
    if not old.get("complete") or dict(old.get("counts", {})) != dict(counts):
        return False
    for split in SPLITS:
        entries = old.get("shards", {}).get(split, [])
        ranges = shard_ranges(counts[split], shard_size)
        want = [(shard_name(split, k), a, b) for k, (a, b) in enumerate(ranges)]
        if [(e.get("file"), e.get("start"), e.get("stop")) for e in entries] != want:
            return False
        for e in entries:
            path = out / e["file"]
            if not path.is_file() or file_sha256(path) != e.get("sha256"):
                return False
    return True


def _remove_shards(out: Path) -> None:
    for split in SPLITS:
        for f in out.glob(f"{split}_*.npz"):
            f.unlink()


def _keep_larger(
    out: Path, old: Mapping[str, Any], counts: dict[str, int], shard_size: int
) -> dict[str, int]:
    """Sizes to (re)build: never fewer per split than the existing cache of the same config holds.

    A smaller request is served from the first samples of the larger cache (``CacheReader`` reads a
    prefix); finished shards are never re-rendered or dropped. An incomplete cache (a killed build) holds
    only what its finished shards cover: the sizes it was asked for are not rendered unless requested again.
    ``overwrite=true`` rebuilds at exactly the requested sizes.
    """
    have = {s: int(old.get("counts", {}).get(s, 0)) for s in SPLITS}
    complete = bool(old.get("complete"))
    if not complete:
        have = {s: _finished_prefix(out, s, have[s], shard_size) for s in SPLITS}
    kept = {s: max(counts[s], have[s]) for s in SPLITS}
    for s in SPLITS:
        if have[s] > counts[s]:
            what = "holds" if complete else "holds from a stopped build (finished shards)"
            log.warning(
                "%s %s %d %s samples (data.n_%s=%d requested): keeping all %d, a run with data.n_%s=%d "
                "reads the first %d; overwrite=true rebuilds it at the requested size",
                out, what, have[s], s, s, counts[s], have[s], s, counts[s], counts[s],
            )
    return kept


def _finished_prefix(out: Path, split: str, n: int, shard_size: int) -> int:
    """Samples [0, k) of ``split`` held by consecutive finished shards (``n``: the size built for)."""
    covered = 0
    for k, (start, stop) in enumerate(shard_ranges(n, shard_size)):
        try:
            with np.load(out / shard_name(split, k), allow_pickle=False) as z:
                index = z["index"]
        except Exception:  # missing or unreadable: the prefix ends here
            break
        if len(index) == 0 or not np.array_equal(index, np.arange(start, start + len(index))):
            break
        covered = start + len(index)
        if covered < stop:  # the last shard of an earlier, smaller build
            break
    return covered


def _entry(path: Path, start: int, stop: int) -> dict[str, Any]:
    return {"file": path.name, "start": start, "stop": stop, "sha256": file_sha256(path)}


def _diff_keys(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            keys += _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(f"{prefix}{k}")
    return keys[:10]

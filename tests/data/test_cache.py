import json
import os

import numpy as np
import pytest

from lensml.data.cache import CacheReader, cache_config, generate_cache, physics_config
from lensml.errors import DataError
from lensml.sim.simulator import SAMPLE_KEYS, build_simulator

COUNTS = {"train": 10, "val": 4, "test": 4}


@pytest.fixture(scope="module")
def sim_cfg(compose_train, tiny):
    return physics_config(compose_train(*tiny))


@pytest.fixture(scope="module")
def simulator(sim_cfg):
    return build_simulator(sim_cfg)


@pytest.fixture(scope="module")
def cache(tmp_path_factory, simulator, sim_cfg):
    out = tmp_path_factory.mktemp("cache")
    generate_cache(simulator, cache_config(sim_cfg, 7), COUNTS, out, shard_size=4, render_batch=3)
    return out


def test_cache_layout_and_manifest(cache, sim_cfg):
    names = sorted(p.name for p in cache.iterdir())
    shards = ["test_00000.npz", "train_00000.npz", "train_00001.npz", "train_00002.npz", "val_00000.npz"]
    assert names == ["manifest.json", *shards]
    m = json.loads((cache / "manifest.json").read_text())
    assert m["complete"] and m["counts"] == COUNTS and m["config"]["seed"] == 7
    assert m["config"]["instrument"]["n_pix"] == 32 and "package_version" in m and len(m["config_hash"]) == 16
    with np.load(cache / "train_00002.npz") as z:
        assert set(z.files) == {*SAMPLE_KEYS, "index"} and list(z["index"]) == [8, 9]


def test_cache_equals_on_the_fly(cache, simulator, sim_cfg):
    reader = CacheReader(cache, cache_config(sim_cfg, 7), COUNTS)
    for split, n in COUNTS.items():
        idx = np.array([n - 1, 0, 2])
        got = reader.get(split, idx, n)
        want = simulator.sample_batch(7, split, idx)
        assert_same_samples(got, want, f"{split}")


def assert_same_samples(got: dict, want: dict, where: str) -> None:
    """Discrete fields bit-identical; float32 maps equal up to float32 round-off of batched rendering."""
    for key in SAMPLE_KEYS:
        if key in ("flux", "velocity"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-4, err_msg=f"{where}/{key}")
        else:
            np.testing.assert_array_equal(got[key], np.asarray(want[key]), err_msg=f"{where}/{key}")


def test_mismatched_config_is_refused(cache, compose_train, tiny):
    other = physics_config(compose_train(*tiny, "noise=low_snr"))
    with pytest.raises(DataError, match=r"another config.*noise\."):
        CacheReader(cache, cache_config(other, 7), COUNTS)
    with pytest.raises(DataError, match="another config.*seed"):
        CacheReader(cache, cache_config(physics_config(compose_train(*tiny)), 8), COUNTS)
    with pytest.raises(DataError, match="data.n_train"):
        CacheReader(cache, cache_config(physics_config(compose_train(*tiny)), 7), {"train": 11})
    with pytest.raises(DataError, match="make_dataset"):
        CacheReader(cache / "nowhere", cache_config(other, 7), COUNTS)


def test_corrupt_shard_is_refused(cache, sim_cfg, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in cache.iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    shard = bad / "val_00000.npz"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match="val_00000.npz fails its sha256"):
        CacheReader(bad, cache_config(sim_cfg, 7), COUNTS).load_split("val", 4)
    shard.write_bytes(bytes(data[:100]))  # truncated: unreadable even without the checksum
    with pytest.raises(DataError, match="val_00000.npz is unreadable or corrupt"):
        CacheReader(bad, cache_config(sim_cfg, 7), COUNTS, verify=False).load_split("val", 4)


class _CrashAfter:
    """Fault injection around the real simulator: raises on call number ``k`` (a crash mid-generation)."""

    def __init__(self, sim, k: int) -> None:
        self.sim, self.k, self.calls = sim, k, 0

    def sample_batch(self, seed, split, indices):
        self.calls += 1
        if self.calls == self.k:
            raise RuntimeError("simulated crash")
        return self.sim.sample_batch(seed, split, indices)


def test_crash_leaves_no_half_shard_and_generation_resumes(tmp_path, simulator, sim_cfg, cache):
    out = tmp_path / "c"
    config = cache_config(sim_cfg, 7)
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate_cache(_CrashAfter(simulator, 4), config, COUNTS, out, shard_size=4, render_batch=3)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train_00000.npz"]  # no temp left
    with pytest.raises(DataError, match="incomplete"):
        CacheReader(out, config, COUNTS)
    first = out / "train_00000.npz"
    mtime = first.stat().st_mtime_ns
    os.utime(first, ns=(mtime - 10**9, mtime - 10**9))
    generate_cache(simulator, config, COUNTS, out, shard_size=4, render_batch=3)
    assert first.stat().st_mtime_ns == mtime - 10**9  # kept, not re-rendered
    reader, ref = CacheReader(out, config, COUNTS), CacheReader(cache, config, COUNTS)
    for split, n in COUNTS.items():
        assert_same_samples(reader.load_split(split, n), ref.load_split(split, n), split)


def test_generate_refuses_to_mix_configs(cache, sim_cfg, simulator):
    with pytest.raises(DataError, match="another config"):
        generate_cache(simulator, cache_config(sim_cfg, 99), COUNTS, cache, shard_size=4)


def test_cache_from_another_simulator_version_is_refused(cache, sim_cfg, monkeypatch):
    import lensml.sim.simulator as sim_mod

    monkeypatch.setattr(sim_mod, "SAMPLES_VERSION", sim_mod.SAMPLES_VERSION + 1)
    with pytest.raises(DataError, match="samples_version"):
        CacheReader(cache, cache_config(sim_cfg, 7), COUNTS)


def _copy(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
        os.utime(dst / p.name, ns=(p.stat().st_mtime_ns, p.stat().st_mtime_ns))
    return dst


def test_smaller_request_keeps_the_larger_cache_and_serves_a_prefix(cache, sim_cfg, simulator, tmp_path):
    """Asking make_dataset for fewer samples never destroys finished shards (issue 11, row 1)."""
    out = _copy(cache, tmp_path / "c")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("*.npz")}
    small = {"train": 2, "val": 4, "test": 1}
    manifest = generate_cache(simulator, cache_config(sim_cfg, 7), small, out, shard_size=4, render_batch=3)
    assert manifest["complete"] and manifest["counts"] == COUNTS  # the cache keeps its 10 train samples
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("*.npz")} == before
    assert [e["file"] for e in manifest["shards"]["train"]] == [f"train_0000{k}.npz" for k in range(3)]
    config = cache_config(sim_cfg, 7)
    reader, ref = CacheReader(out, config, small), CacheReader(cache, config, COUNTS)
    got = reader.get("train", np.array([1, 0]), 2)
    assert_same_samples(got, ref.get("train", np.array([1, 0]), 10), "prefix")
    # a larger request of one split extends it and keeps the others
    more = generate_cache(simulator, cache_config(sim_cfg, 7), {"train": 2, "val": 6, "test": 1}, out,
                          shard_size=4, render_batch=3)
    assert more["counts"] == {"train": 10, "val": 6, "test": 4}
    # overwrite=true rebuilds at exactly the requested sizes
    exact = generate_cache(simulator, cache_config(sim_cfg, 7), small, out, shard_size=4, overwrite=True)
    assert exact["counts"] == small and sorted(p.name for p in out.glob("*.npz")) == [
        "test_00000.npz", "train_00000.npz", "val_00000.npz"]


def test_resume_re_renders_a_shard_that_fails_its_recorded_sha256(cache, sim_cfg, simulator, tmp_path):
    out = _copy(cache, tmp_path / "c")
    shard = out / "train_00001.npz"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match="train_00001.npz fails its sha256.*make_dataset"):
        CacheReader(out, cache_config(sim_cfg, 7), COUNTS).verify_shards(COUNTS)
    generate_cache(simulator, cache_config(sim_cfg, 7), COUNTS, out, shard_size=4, render_batch=3)
    assert CacheReader(out, cache_config(sim_cfg, 7), COUNTS).verify_shards(COUNTS) == 5
    assert shard.read_bytes() == (cache / "train_00001.npz").read_bytes()  # re-rendered bit-identically


_KILL_MID_SHARD = """
import os, signal, sys
import numpy as np
import lensml.atomic_io as aio
from lensml.data.cache import cache_config, generate_cache, physics_config
from lensml.sim.simulator import build_simulator
from hydra import compose, initialize_config_dir
from lensml.paths import CONF_DIR

def savez_then_die(fh, **arrays):  # the second shard dies half written
    if "train_00001" in fh.name:
        fh.write(b"PK half a zip")
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    np.savez(fh, **arrays)

aio.np = type("np", (), {"savez": staticmethod(savez_then_die), "save": np.save})
with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
    cfg = compose("train", overrides=["run_dir=.", *sys.argv[2:]])
sim_cfg = physics_config(cfg)
generate_cache(build_simulator(sim_cfg), cache_config(sim_cfg, 7), {"train": 10, "val": 4, "test": 4},
               sys.argv[1], shard_size=4, render_batch=3)
"""


def test_sigkill_mid_shard_leaves_a_temp_that_the_next_run_sweeps(tmp_path, sim_cfg, simulator, tiny, cache):
    """A real SIGKILL while a shard is written; the next run sweeps it and finishes (issue 11, row 2)."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "c"
    proc = subprocess.run([sys.executable, "-c", _KILL_MID_SHARD, str(out), *tiny], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    temps = [p.name for p in out.iterdir() if ".tmp" in p.name]
    assert len(temps) == 1 and temps[0].startswith(".train_00001.npz."), temps
    generate_cache(simulator, cache_config(sim_cfg, 7), COUNTS, out, shard_size=4, render_batch=3)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in cache.iterdir())  # no temp left
    config = cache_config(sim_cfg, 7)
    reader, ref = CacheReader(out, config, COUNTS), CacheReader(cache, config, COUNTS)
    assert_same_samples(reader.load_split("train", 10), ref.load_split("train", 10), "train")


def test_shards_and_manifest_follow_the_umask(tmp_path, sim_cfg, simulator):
    old = os.umask(0o002)  # a group-shared cluster folder
    try:
        generate_cache(simulator, cache_config(sim_cfg, 7), {"train": 2, "val": 1, "test": 1}, tmp_path / "c",
                       shard_size=4)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "c").iterdir()}
    assert set(modes.values()) == {0o664}, modes


def test_invalid_manifest_json_is_one_clear_error_and_shards_stay(cache, sim_cfg, simulator, tmp_path):
    """A manifest that is not JSON: one DataError naming the file and overwrite=true; no shard touched."""
    out = _copy(cache, tmp_path / "c")
    (out / "manifest.json").write_text('{"format": "lensml-sim-cache", "counts": {')  # cut short
    before = {p.name: p.read_bytes() for p in out.glob("*.npz")}
    with pytest.raises(DataError, match=r"manifest.json is not valid JSON.*cannot be reused.*overwrite=true"):
        generate_cache(simulator, cache_config(sim_cfg, 7), COUNTS, out, shard_size=4, render_batch=3)
    assert {p.name: p.read_bytes() for p in out.glob("*.npz")} == before
    small = {"train": 2, "val": 1, "test": 1}
    m = generate_cache(simulator, cache_config(sim_cfg, 7), small, out, shard_size=4, overwrite=True)
    assert m["complete"] and m["counts"] == small


def test_a_killed_large_build_does_not_force_its_size_on_a_small_request(cache, sim_cfg, simulator, tmp_path):
    """After a killed 50k build, 2 train samples render only what they need; finished shards are kept."""
    out = _copy(cache, tmp_path / "c")
    for name in ("train_00002.npz", "val_00000.npz", "test_00000.npz"):  # killed during train shard 2
        (out / name).unlink()
    m = json.loads((out / "manifest.json").read_text())
    m.update(complete=False, counts={"train": 50_000, "val": 5_000, "test": 5_000}, shards={})
    (out / "manifest.json").write_text(json.dumps(m))
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("train_*.npz")}
    totals = []

    def on_total(n: int) -> None:
        totals.append(n)
        assert n < 1000, f"would render {n} samples for a request of 6"

    small = {"train": 2, "val": 4, "test": 4}
    m = generate_cache(simulator, cache_config(sim_cfg, 7), small, out, shard_size=4, render_batch=3,
                       on_total=on_total)
    assert m["complete"] and m["counts"] == {"train": 8, "val": 4, "test": 4} and totals == [16]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("train_*.npz")} == kept  # not re-rendered
    ref = CacheReader(cache, cache_config(sim_cfg, 7), COUNTS)
    got = CacheReader(out, cache_config(sim_cfg, 7), small)
    assert_same_samples(got.load_split("train", 8), ref.get("train", np.arange(8), 10), "kept prefix")


def test_a_no_op_rerun_leaves_the_manifest_alone(cache, sim_cfg, simulator, tmp_path, monkeypatch):
    """Re-running make_dataset on a complete cache never shows a concurrently starting run 'incomplete'."""
    import lensml.data.cache as cache_mod

    out = _copy(cache, tmp_path / "c")
    before = (out / "manifest.json").read_bytes()
    writes = []
    monkeypatch.setattr(cache_mod, "write_json", lambda path, obj: writes.append((path, obj["complete"])))
    for counts in (COUNTS, {"train": 2, "val": 4, "test": 1}):  # the same sizes, or smaller ones
        m = generate_cache(simulator, cache_config(sim_cfg, 7), counts, out, shard_size=4, render_batch=3)
        assert m["complete"] and m["counts"] == COUNTS
    assert writes == [] and (out / "manifest.json").read_bytes() == before
    (out / "val_00000.npz").write_bytes(b"corrupt")  # something to repair: the manifest is rewritten
    monkeypatch.undo()
    generate_cache(simulator, cache_config(sim_cfg, 7), COUNTS, out, shard_size=4, render_batch=3)
    assert CacheReader(out, cache_config(sim_cfg, 7), COUNTS).verify_shards(COUNTS) == 5


def test_a_reader_of_an_invalid_manifest_names_the_command_that_rebuilds_it(cache, sim_cfg, tmp_path):
    """The command in the message must work: make_dataset refuses a non-JSON manifest without overwrite."""
    out = _copy(cache, tmp_path / "c")
    (out / "manifest.json").write_text("{")
    want = r"not valid JSON.*`python -m lensml.make_dataset x=1 overwrite=true`"
    with pytest.raises(DataError, match=want):
        CacheReader(out, cache_config(sim_cfg, 7), COUNTS, make_cmd="python -m lensml.make_dataset x=1")

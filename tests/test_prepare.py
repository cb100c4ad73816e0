"""pyconvnet.prepare on small generated trees: pixels, conversions, statistics, bad files, errors,
and resumption after a kill at every commit point."""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

import pyconvnet
from pyconvnet import prepare as prep
from pyconvnet.dataset import PreparedDataset
from imagetree import bad_files, random_image, write_tree

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pyconvnet.__file__)))


def run(src, out, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("progress", False)
    return prep.prepare(src, out, **kw)


def direct(image, size, resample=Image.BILINEAR):
    """Resize-and-crop written independently of prepare: short side to `size` (long side rounded
    half up), central size x size."""
    w, h = image.size
    short, long = min(w, h), max(w, h)
    new_long = max(size, int(Fraction(long * size, short) + Fraction(1, 2)))
    nw, nh = (size, new_long) if w <= h else (new_long, size)
    r = image.resize((nw, nh), resample)
    x0, y0 = (nw - size) // 2, (nh - size) // 2
    return np.asarray(r)[y0:y0 + size, x0:x0 + size]


def subprocess_prepare(src, out, *args, failpoint=None, env=None, **popen):
    env = dict(env or os.environ, PYTHONPATH=PACKAGE_ROOT)
    env.pop("PYCONVNET_PREPARE_FAILPOINT", None)
    if failpoint:
        env["PYCONVNET_PREPARE_FAILPOINT"] = failpoint
    cmd = [sys.executable, "-m", "pyconvnet.prepare", str(src), str(out), "--quiet", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def output_of(out):
    """Everything a prepared directory holds that must not depend on how the run went."""
    d = {}
    for name in sorted(os.listdir(out)):
        path = os.path.join(out, name)
        if name == "manifest.json":
            with open(path) as f:
                m = json.load(f)
            m.pop("created_utc"), m.pop("seconds")
            d[name] = m
        else:
            with open(path, "rb") as f:
                d[name] = f.read()
    return d


# ----------------------------------------------------------------------------- pixels

@pytest.mark.parametrize("resample", ["bilinear", "bicubic"])
def test_pixels_equal_direct_pillow_resize_and_crop(tmp_path, rng, resample):
    sizes = ((20, 30), (31, 17), (24, 24), (5, 9), (16, 64), (80, 33))  # down, up, square, tall, wide
    written = write_tree(tmp_path / "src", rng, per_class=6, sizes=sizes)
    run(tmp_path / "src", tmp_path / "out", size=16, val_fraction=0.0, resample=resample)
    data = PreparedDataset(tmp_path / "out")
    images, labels = data.images("train"), data.labels("train")
    assert images.shape == (18, 16, 16, 3) and images.dtype == np.uint8 and labels.dtype == np.int32
    for k, (rel, pixels) in enumerate(sorted(written.items())):  # files in sorted order
        expected = direct(Image.fromarray(pixels), 16, prep.RESAMPLE[resample])
        assert np.array_equal(images[k], expected), rel
        assert labels[k] == ["n001", "n002", "n003"].index(rel.split("/")[0])
    assert [c["synset"] for c in data.classes] == ["n001", "n002", "n003"]


def test_modes_are_converted_to_rgb(tmp_path, rng):
    src = tmp_path / "src" / "c"
    src.mkdir(parents=True)
    rgb = random_image(rng, 24, 20)
    gray = rgb[..., 0]
    alpha = np.tile(np.linspace(0, 255, 20).astype(np.uint8), (24, 1))
    deep = (gray.astype(np.uint16) * 257 + rng.integers(0, 257, gray.shape)).astype(np.uint16)
    white = np.full((24, 20, 3), 255.0)
    a = alpha[..., None] / 255.0
    cases = {
        "gray.png": (Image.fromarray(gray, "L"), np.repeat(gray[..., None], 3, 2)),
        "rgba.png": (Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), None),
        "la.png": (Image.fromarray(np.dstack([gray, alpha]), "LA"), None),
        "palette.png": (Image.fromarray(rgb).quantize(16), None),
        "deep.png": (Image.fromarray(deep), np.repeat(np.rint(deep / 257.0).astype(np.uint8)[..., None], 3, 2)),
        "cmyk.tif": (Image.fromarray(rgb).convert("CMYK"), None),
        "bits.png": (Image.fromarray(gray > 128), np.repeat(np.where(gray > 128, 255, 0).astype(np.uint8)[..., None], 3, 2)),
    }
    # Transparent pixels are composited over white: the expected values, computed here.
    expect_rgba = np.clip(np.rint(rgb * a + white * (1 - a)), 0, 255)
    expect_la = np.clip(np.rint(np.repeat(gray[..., None], 3, 2) * a + white * (1 - a)), 0, 255)
    for name, (im, _) in cases.items():
        im.save(src / name)
    assert Image.open(src / "deep.png").mode.startswith("I")
    run(tmp_path / "src", tmp_path / "out", size=20, val_fraction=0.0, resample="nearest")
    images = PreparedDataset(tmp_path / "out").images("train")
    got = {name: images[k] for k, name in enumerate(sorted(cases))}
    crop = slice(2, 22)  # 24x20 -> short side 20 already: nearest keeps pixels, central rows 2..21
    for name, (im, expected) in cases.items():
        if expected is not None:
            assert np.array_equal(got[name], expected[crop]), name
    assert np.abs(got["rgba.png"].astype(int) - expect_rgba[crop]).max() <= 1
    assert np.abs(got["la.png"].astype(int) - expect_la[crop]).max() <= 1
    assert np.array_equal(got["palette.png"], np.asarray(cases["palette.png"][0].convert("RGB"))[crop])
    assert np.array_equal(got["cmyk.tif"], np.asarray(cases["cmyk.tif"][0].convert("RGB"))[crop])


def test_exif_orientation_is_honoured(tmp_path, rng):
    src = tmp_path / "src" / "c"
    src.mkdir(parents=True)
    pixels = random_image(rng, 30, 48)  # wide as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(src / "rotated.jpg", exif=exif.tobytes(), quality=95)
    Image.fromarray(pixels).save(src / "upright.jpg", quality=95)
    run(tmp_path / "src", tmp_path / "out", size=16, val_fraction=0.0)
    images = PreparedDataset(tmp_path / "out").images("train")
    stored = Image.open(src / "rotated.jpg")
    stored.load()
    assert np.array_equal(images[0], direct(stored.transpose(Image.Transpose.ROTATE_270).convert("RGB"), 16))
    assert np.array_equal(images[1], direct(Image.open(src / "upright.jpg").convert("RGB"), 16))


def test_mean_and_pca_equal_numpys(tmp_path, rng):
    write_tree(tmp_path / "src", rng, per_class=7)
    run(tmp_path / "src", tmp_path / "out", size=12, val_fraction=0.3, shard_size=4)
    data = PreparedDataset(tmp_path / "out")
    x = np.asarray(data.images("train"))
    assert data.mean.dtype == np.float32
    assert np.array_equal(data.mean, x.mean(axis=0, dtype=np.float64).astype(np.float32))
    cov = np.cov(x.reshape(-1, 3).T.astype(np.float64), bias=True)
    with open(tmp_path / "out" / "pca.json") as f:
        pca = json.load(f)
    np.testing.assert_allclose(pca["covariance"], cov, rtol=1e-10, atol=1e-9)
    vals, vecs = np.linalg.eigh(cov)
    np.testing.assert_allclose(data.eigvals, vals[::-1], rtol=1e-9)
    for i in range(3):  # the same eigenvectors up to sign, which prepare fixes: largest component > 0
        v = vecs[:, 2 - i] * np.sign(vecs[np.argmax(np.abs(vecs[:, 2 - i])), 2 - i])
        np.testing.assert_allclose(data.eigvecs[:, i], v, atol=1e-9)
    np.testing.assert_allclose(data.eigvecs @ np.diag(data.eigvals) @ data.eigvecs.T, cov, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- layouts

def test_train_val_layout_and_names(tmp_path, rng):
    write_tree(tmp_path / "src" / "train", rng, per_class=4)
    write_tree(tmp_path / "src" / "val", rng, classes=("n001", "n003"), per_class=2)
    write_tree(tmp_path / "src" / "test", rng, classes=("unlabelled",), per_class=1)
    (tmp_path / "src" / "README").write_text("ignored, and counted")
    (tmp_path / "names.txt").write_text("n001 tench, Tinca tinca\nn002 goldfish\n")
    run(tmp_path / "src", tmp_path / "out", size=8, names=tmp_path / "names.txt")
    data = PreparedDataset(tmp_path / "out")
    assert data.manifest["layout"] == "train+val"
    assert data.manifest["ignored"]["in SRC beside train/ and val/"] == 2
    assert data.count("train") == 12 and data.count("val") == 4
    assert data.labels("val").tolist() == [0, 0, 2, 2]
    assert data.class_names() == ["tench, Tinca tinca", "goldfish", "n003"]
    assert data.manifest["splits"]["val"]["per_class"] == [2, 0, 2]


def test_split_by_fraction_is_seeded_and_stratified(tmp_path, rng):
    write_tree(tmp_path / "src", rng, classes=("a", "b"), per_class=10)
    (tmp_path / "src" / "c").mkdir()
    Image.fromarray(random_image(rng, 9, 9)).save(tmp_path / "src" / "c" / "only.png")

    def val_files(seed, out):
        m = run(tmp_path / "src", tmp_path / out, size=8, val_fraction=0.25, seed=seed)
        return m["splits"]["val"]["per_class"], PreparedDataset(tmp_path / out).images("val")[:].tobytes()

    counts, first = val_files(0, "o1")
    assert counts == [3, 3, 0]  # round(0.25 * 10) per class; a class of one image keeps it for training
    assert val_files(0, "o2")[1] == first
    assert val_files(1, "o3")[1] != first


# ----------------------------------------------------------------------------- bad files

def test_bad_files_are_skipped_and_listed(tmp_path, rng, capsys):
    write_tree(tmp_path / "src", rng, classes=("a", "b"), per_class=3)
    bad = bad_files(rng)
    for name, (data, _) in bad.items():
        (tmp_path / "src" / "b" / name).write_bytes(data)
    (tmp_path / "src" / "a" / ".DS_Store").write_bytes(b"\0\0")
    (tmp_path / "src" / "README").write_text("not in a class folder")
    m = run(tmp_path / "src", tmp_path / "out", size=8, val_fraction=0.0, shard_size=2, progress=True)
    reasons = {os.path.basename(s["path"]): s["reason"] for s in m["skipped"]}
    assert set(reasons) == set(bad)
    for name, (_, kind) in bad.items():
        assert reasons[name].startswith(kind + ":"), (name, reasons[name])
    assert m["splits"]["train"]["count"] == 6 and m["splits"]["train"]["files"] == 6 + len(bad)
    assert m["ignored"] == {"hidden": 1, "outside class folders": 1}
    assert PreparedDataset(tmp_path / "out").labels("train").tolist() == [0, 0, 0, 1, 1, 1]
    assert ("skipped 6 of 12 files (2 not an image, 2 truncated, 1 corrupt, 1 empty file; listed in manifest.json)"
            in capsys.readouterr().err)


def test_a_class_whose_files_all_fail_is_reported(tmp_path, rng):
    write_tree(tmp_path / "src", rng, classes=("a",), per_class=2)
    (tmp_path / "src" / "b").mkdir()
    (tmp_path / "src" / "b" / "x.jpg").write_bytes(b"")
    m = run(tmp_path / "src", tmp_path / "out", size=8, val_fraction=0.0)
    assert m["classes_without_train_images"] == ["b"] and "WARNING" in prep._summary(m)


# ----------------------------------------------------------------------------- errors

def test_clear_errors_for_bad_sources(tmp_path, rng, monkeypatch):
    with pytest.raises(prep.PrepareError, match=r"SRC .*missing does not exist"):
        run(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(prep.PrepareError, match=r"SRC .*file is not a directory"):
        run(tmp_path / "file", tmp_path / "out")
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "a.jpg").write_bytes(b"")
    with pytest.raises(prep.PrepareError, match=r"SRC .*none has no class folders: expected one folder per class"):
        run(tmp_path / "none", tmp_path / "out")
    write_tree(tmp_path / "src", rng, classes=("a",), per_class=1)
    (tmp_path / "src" / "b").mkdir()
    (tmp_path / "src" / "c").mkdir()
    with pytest.raises(prep.PrepareError, match=r"2 class folder\(s\) hold no files: b, c\. Remove them"):
        run(tmp_path / "src", tmp_path / "out")
    write_tree(tmp_path / "tv" / "train", rng, classes=("a",), per_class=1)
    write_tree(tmp_path / "tv" / "val", rng, classes=("a", "z"), per_class=1)
    with pytest.raises(prep.PrepareError, match=r"SRC/val has class folders that SRC/train lacks: z"):
        run(tmp_path / "tv", tmp_path / "out")

    def denied(path):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(prep.os, "scandir", denied)
    with pytest.raises(prep.PrepareError, match=r"cannot read SRC/train .*tv/train: Permission denied"):
        run(tmp_path / "tv", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # a failed scan writes nothing


def test_clear_errors_for_bad_outputs(tmp_path, rng):
    write_tree(tmp_path / "src", rng, classes=("a",), per_class=2)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("precious")
    with pytest.raises(prep.PrepareError, match=r"OUT .*busy exists and holds other files \(thesis.tex\)"):
        run(tmp_path / "src", tmp_path / "busy")
    assert (tmp_path / "busy" / "thesis.tex").read_text() == "precious"
    with pytest.raises(prep.PrepareError, match=r"OUT .*src/out is inside SRC"):
        run(tmp_path / "src", tmp_path / "src" / "out")
    with pytest.raises(prep.PrepareError, match=r"size must be a positive integer; got 0"):
        run(tmp_path / "src", tmp_path / "out", size=0)
    with pytest.raises(prep.PrepareError, match=r"val_fraction must be in \[0, 1\); got 1.5"):
        run(tmp_path / "src", tmp_path / "out", val_fraction=1.5)


def test_rerun_keeps_a_finished_output_and_refuses_other_settings(tmp_path, rng):
    write_tree(tmp_path / "src", rng, classes=("a",), per_class=3)
    run(tmp_path / "src", tmp_path / "out", size=8)
    before = output_of(tmp_path / "out")
    run(tmp_path / "src", tmp_path / "out", size=8)
    assert output_of(tmp_path / "out") == before
    with pytest.raises(prep.PrepareError, match=r"holds a dataset prepared from .* with settings .*'size': 8.*"
                                                r"this run asks for .*'size': 9.*Rerun with the same arguments"):
        run(tmp_path / "src", tmp_path / "out", size=9)


def test_cli_reports_errors_without_a_traceback(tmp_path):
    p = subprocess_prepare(tmp_path / "missing", tmp_path / "out")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2
    assert err.decode().startswith("error: SRC ") and "Traceback" not in err.decode()


# ----------------------------------------------------------------------------- resumption

@pytest.fixture
def tree(tmp_path, rng):
    write_tree(tmp_path / "src", rng, per_class=5)
    (tmp_path / "src" / "n002" / "zz_truncated.jpg").write_bytes(bad_files(rng)["truncated.jpg"][0])
    run(tmp_path / "src", tmp_path / "clean", size=8, shard_size=2)
    return tmp_path


def test_resume_after_a_kill_at_every_commit_point(tree, monkeypatch):
    # 12 train files + 3 val (+1 bad) in shards of 2: shards 0..6 train, 7..8 val.
    args = ("--size", "8", "--shard-size", "2", "--workers", "0")
    clean = output_of(tree / "clean")
    points = ["scan", "append:1", "commit:2", "append:7", "finalize:labels", "finalize:images:train",
              "finalize:manifest"]
    for point in points:
        out = tree / f"out-{point.replace(':', '-')}"
        p = subprocess_prepare(tree / "src", out, *args, failpoint=point)
        p.communicate(timeout=60)
        assert p.returncode == -signal.SIGKILL, point
        if point != "finalize:manifest":  # an interrupted output is never mistaken for a dataset
            with pytest.raises(FileNotFoundError, match="is not a prepared dataset.*run the same"):
                PreparedDataset(out)
        decoded = []
        real = prep.decode_shard
        monkeypatch.setattr(prep, "decode_shard", lambda work, k, *a: decoded.append(k) or real(work, k, *a))
        run(tree / "src", out, size=8, shard_size=2)
        monkeypatch.undo()
        assert output_of(out) == clean, point
        assert not (out / ".work").exists()
        kind, _, k = point.partition(":")
        if kind in ("append", "commit"):  # no finished shard is decoded again
            assert decoded == list(range(int(k) + 1, 9)), point


def test_resume_after_killing_a_parallel_run_at_a_random_time(tmp_path, rng):
    write_tree(tmp_path / "src", rng, classes=tuple(f"c{i}" for i in range(8)), per_class=12,
               sizes=((60, 80), (90, 70)))
    run(tmp_path / "src", tmp_path / "clean", size=16, shard_size=3)
    args = ("--size", "16", "--shard-size", "3", "--workers", "2")
    p = subprocess_prepare(tmp_path / "src", tmp_path / "out", *args, start_new_session=True)
    deadline = time.monotonic() + 60  # wait for decoding to start (imports and workers take a while)
    while not (tmp_path / "out" / ".work" / "progress.npz").exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.3))
    os.killpg(p.pid, signal.SIGKILL)  # the run and its workers, wherever they are
    p.communicate(timeout=60)
    p = subprocess_prepare(tmp_path / "src", tmp_path / "out", *args)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err.decode()
    assert output_of(tmp_path / "out") == output_of(tmp_path / "clean")


def test_a_second_run_on_the_same_out_is_refused_while_one_runs(tmp_path, rng):
    write_tree(tmp_path / "src", rng, classes=("a",), per_class=2)
    lock = prep._lock(str(tmp_path / "out" / ".work"))
    try:
        with pytest.raises(prep.PrepareError, match="another `pyconvnet.prepare` is writing"):
            run(tmp_path / "src", tmp_path / "out")
    finally:
        lock.close()
    run(tmp_path / "src", tmp_path / "out")
    shutil.rmtree(tmp_path / "out")


# ----------------------------------------------------------------------------- interrupted writes

def test_stale_temporaries_in_out_are_removed_and_the_run_finishes(tree):
    """A run killed while writing its outputs leaves OUT/<name>.<pid>.tmp; the next run is not
    refused for it ("holds other files"): it removes it and finishes."""
    out = tree / "out"
    p = subprocess_prepare(tree / "src", out, "--size", "8", "--shard-size", "2", "--workers", "0",
                           failpoint="finalize:labels")
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    (out / "mean.npy.4194303.tmp").write_bytes(b"half a file")
    (out / ".work" / "shards" / "0000003.npz.4194303.tmp").write_bytes(b"half a shard")
    run(tree / "src", out, size=8, shard_size=2)
    assert output_of(out) == output_of(tree / "clean")
    (out / "pca.json.4194303.tmp").write_bytes(b"left after the manifest")
    run(tree / "src", out, size=8, shard_size=2)  # finished already: only the temporary goes
    assert output_of(out) == output_of(tree / "clean")


def _file_size_limit(limit):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
    return set_limit


def test_a_full_disk_is_one_line_leaves_no_temporary_and_the_rerun_finishes(tree):
    """A file-size limit below the size of the image arrays fails the final writes as a full disk
    would: exit 2, one line, no temporary in OUT; with room again, the same command finishes."""
    out = tree / "out"
    p = subprocess_prepare(tree / "src", out, "--size", "8", "--shard-size", "2", "--workers", "0",
                           preexec_fn=_file_size_limit(1000))
    _, err = p.communicate(timeout=60)
    lines = err.decode().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), err.decode()
    assert "run the same command again" in lines[0] and str(out) in lines[0]
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    p = subprocess_prepare(tree / "src", out, "--size", "8", "--shard-size", "2", "--workers", "0")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err.decode()
    assert output_of(out) == output_of(tree / "clean")


def _processes_with(marker):
    """Process ids whose environment holds `marker` (this test's children and their children)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the worker processes")
def test_workers_die_with_a_killed_parent(tmp_path, rng):
    write_tree(tmp_path / "src", rng, classes=tuple(f"c{i}" for i in range(6)), per_class=30,
               sizes=((300, 400), (410, 290)))
    marker = f"PYCONVNET_TEST_MARK={os.getpid()}-{rng.integers(1 << 60)}"
    env_name, value = marker.split("=")
    p = subprocess_prepare(tmp_path / "src", tmp_path / "out", "--size", "64", "--shard-size", "2",
                           "--workers", "2", env=dict(os.environ, **{env_name: value}))
    deadline = time.monotonic() + 60  # decoding has started: the workers exist
    while not (tmp_path / "out" / ".work" / "progress.npz").exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.poll() is None, "prepare finished before it could be killed"
    assert len(_processes_with(marker.encode())) >= 3  # the run, the fork server, the workers
    p.kill()  # the parent alone, as kill -9 PID does
    p.communicate(timeout=60)
    deadline = time.monotonic() + 20
    while _processes_with(marker.encode()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(marker.encode()) == []

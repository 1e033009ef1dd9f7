"""Hostile inputs (issue 12, section 5): every bad input gives one clear line, never a traceback,
a hang, gigabytes of memory or a silently wrong result.

Each CLI case asserts: exit status != 0 (2 for usage errors, else 1), exactly one stderr line
starting with `error:` that matches the case's pattern, no traceback, bounded time, the input
files unchanged and no output written. Cases marked `proc` run `python -m ganprior.cli` in a
subprocess under RLIMIT_AS (3 GiB) with a wall-clock limit and a peak-RSS check (os.wait4);
the others run in-process with typer's CliRunner (cheap). The decoding cases at the end assert
the *correct* result where a right answer exists (16-bit scaling, alpha, EXIF, ICC, float).
The hostile files are tiny and written here; nothing is committed.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import resource
import stat
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_stylegan2
from nvidia_pickle import as_persistent, write_nvidia_pickle
from PIL import Image, ImageCms
from typer.testing import CliRunner

from ganprior.checkpoints import save_native
from ganprior.cli import app
from ganprior.errors import ImageError
from ganprior.images import load_image

TIME_LIMIT = 30          # seconds per case
MEMORY_LIMIT = 3 << 30   # RLIMIT_AS of the subprocess cases
RSS_LIMIT = 1536 << 20   # peak resident memory of the subprocess cases


# --- hostile files ---------------------------------------------------------------------------

def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height 8-bit gray pixels but holds almost no data: a
    decompression bomb as far as the header is concerned."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _save(arr, path, **kw):
    Image.fromarray(arr).save(path, **kw)
    return path


def _shared_modules_pickle(G, path, depth=25):
    """Modules whose children are the same object twice, 25 levels deep: 2^25 paths."""
    def edit(data):
        child = as_persistent(torch.nn.Identity())
        for _ in range(depth):
            parent = as_persistent(torch.nn.Identity())
            parent.meta["state"]["_modules"] = {"a": child, "b": child}
            child = parent
        data["G_ema"].meta["state"]["_modules"]["extra"] = child
    write_nvidia_pickle(path, G_ema=G, edit=edit)


def _kwargs_pickle(G, path, value):
    def edit(data):
        data["G_ema"].meta["state"]["_init_kwargs"]["mapping_kwargs"]["bomb"] = value
    write_nvidia_pickle(path, G_ema=G, edit=edit)


def _int_weight_pickle(G, path):
    def edit(data):
        fc0 = (data["G_ema"].meta["state"]["_modules"]["mapping"].meta["state"]["_modules"]["fc0"])
        w = fc0.meta["state"]["_parameters"]["weight"]
        fc0.meta["state"]["_parameters"]["weight"] = torch.zeros(w.shape, dtype=torch.int64)
    write_nvidia_pickle(path, G_ema=G, edit=edit)


def _patch_zip_sizes(path, size):
    """Rewrite the declared uncompressed size of every member (local and central headers)."""
    data = bytearray(path.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = data.find(sig)
        while i >= 0:
            data[i + offset:i + offset + 4] = struct.pack("<I", size)
            i = data.find(sig, i + 4)
    path.write_bytes(bytes(data))


def build(root: Path) -> dict:
    rng = np.random.RandomState(0)
    img = root / "img"
    img.mkdir()
    good = _save(rng.randint(0, 255, (16, 16, 3)).astype(np.uint8), img / "good.png")
    (img / "notimage.png").write_text("this is not an image\n")
    (img / "empty.png").write_bytes(b"")
    data = good.read_bytes()
    (img / "truncated.png").write_bytes(data[: len(data) // 2])
    jpg = _save(rng.randint(0, 255, (64, 64, 3)).astype(np.uint8), img / "full.jpg")
    (img / "truncated.jpg").write_bytes(jpg.read_bytes()[:300])
    jpg.unlink()
    _save(np.zeros((1, 1, 3), np.uint8), img / "one.png")
    _save(np.zeros((1, 5000, 3), np.uint8), img / "strip.png")
    _save(np.zeros((16, 80, 3), np.uint8), img / "wide.png")  # 5:1
    (img / "bomb.png").write_bytes(_png_header(10_000, 10_000))
    (img / "bigbomb.png").write_bytes(_png_header(40_000, 40_000))
    a = np.full((16, 16), 0.5, np.float32)
    a[3, 4] = np.nan
    _save(a, img / "nan.tif")
    _save(np.full((16, 16), 200.0, np.float32), img / "float255.tif")
    _save(np.full((16, 16), np.inf, np.float32), img / "inf.tif")
    _save(np.full((16, 16), 100_000, np.int32), img / "int32.tif")
    (img / "eps.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nshowpage\n")
    Image.new("P", (16, 16)).save(img / "gif.png", format="GIF")
    _save(np.zeros((16, 16, 3), np.uint8), img / "badicc.png", icc_profile=b"garbage" * 20)
    os.mkfifo(img / "fifo.png")

    folder = root / "folder"  # a dataset with two bad files among good ones
    folder.mkdir()
    for i in range(3):
        _save(rng.randint(0, 255, (16, 16, 3)).astype(np.uint8), folder / f"ok{i}.png")
    (folder / "bad.png").write_text("oops")
    (folder / "cut.png").write_bytes(data[:40])
    fifo_folder = root / "fifofolder"
    fifo_folder.mkdir()
    _save(np.zeros((16, 16, 3), np.uint8), fifo_folder / "a.png")
    os.mkfifo(fifo_folder / "b.png")

    with zipfile.ZipFile(root / "zipbomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("img.png", b"\0" * 1000)
    _patch_zip_sizes(root / "zipbomb.zip", 0xFFFFFFF0)  # declares a 4 GiB member

    ck = root / "ck"
    ck.mkdir()
    G = small_stylegan2(res=16)
    save_native(ck / "tiny", G)
    write_nvidia_pickle(ck / "tiny.pkl", G_ema=G)
    (ck / "random.pkl").write_bytes(b"\x80" + rng.bytes(300))
    (ck / "empty.pkl").write_bytes(b"")
    whole = (ck / "tiny.pkl").read_bytes()
    (ck / "truncated.pkl").write_bytes(whole[: len(whole) // 2])
    (ck / "system.pkl").write_bytes(b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00ls\x85R.")
    _shared_modules_pickle(G, ck / "shared.pkl")
    grow = ["x" * 1000]
    for _ in range(23):
        grow = [grow, grow]  # 8 M copies of 1 KB once expanded (json.dumps, copies)
    _kwargs_pickle(G, ck / "growing.pkl", grow)
    cycle = []
    cycle.append(cycle)
    _kwargs_pickle(G, ck / "cycle.pkl", cycle)
    n = 5000  # {"k": [[[[...]]]]} 5000 levels deep, written opcode by opcode
    (ck / "deep.pkl").write_bytes(b"\x80\x02}X\x01\x00\x00\x00k" + b"]" * n + b"a" * (n - 1)
                                  + b"s.")
    (ck / "memo.pkl").write_bytes(b"\x80\x02}r\xff\xff\xff\x7f.")  # memo index 2^31 - 1
    write_nvidia_pickle(ck / "zdim.pkl", G_ema=G, G_kwargs=dict(G.config, z_dim=8_000_000))
    write_nvidia_pickle(ck / "negative.pkl", G_ema=G, G_kwargs=dict(G.config, w_dim=-24))
    write_nvidia_pickle(ck / "hugeres.pkl", G_ema=G, G_kwargs=dict(G.config, img_resolution=2**40))
    G_nan = copy.deepcopy(G)
    with torch.no_grad():
        G_nan.mapping.fc0.weight[0, 0] = float("nan")
    write_nvidia_pickle(ck / "nan.pkl", G_ema=G_nan)
    _int_weight_pickle(G, ck / "intweights.pkl")
    G_inf = copy.deepcopy(G)
    with torch.no_grad():
        G_inf.synthesis.b4.const[0, 0, 0] = float("inf")
    save_native(ck / "inf", G_inf)
    cfg = json.loads((ck / "tiny.json").read_text())
    cfg["G"]["kwargs"]["z_dim"] = 8_000_000
    (ck / "zdim.json").write_text(json.dumps(cfg))
    (ck / "zdim.safetensors").write_bytes((ck / "tiny.safetensors").read_bytes())
    with zipfile.ZipFile(ck / "bomb.pt", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb/data.pkl", b"\0" * (80 << 20))  # 80 MB of zeros in ~80 KB
    torch.save({"g_ema": {"style.1.weight": torch.zeros(1).expand(1, 8_000_000),
                          "conv1.conv.weight": torch.zeros(1).expand(1, 512, 512, 3, 3)},
                "latent_avg": None}, ck / "rosinality_huge.pt")
    torch.save({"g_ema": {"style.1.weight": "not a tensor"}}, ck / "rosinality_str.pt")
    os.mkfifo(ck / "fifo.pkl")

    (root / "afile").write_text("a file where a folder is expected\n")
    (root / "outdir.zip").mkdir()
    weights = root / "weights"
    weights.mkdir()
    return dict(root=root, img=img, good=good, folder=folder, fifofolder=fifo_folder, ck=ck,
                model=ck / "tiny.safetensors", weights=weights)


# --- the cases -------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    argv: list
    expect: str               # regex the `error:` line must match
    status: int = 1
    proc: bool = False        # subprocess with memory / time limits
    xfail: str = ""

    def args(self, fx, out):
        return [str(a).format(out=out, **fx) for a in self.argv]


M = ["--model", "{model}"]
GEN = ["generate", *M, "--seeds", "0", "--out", "{out}"]
TRAIN = ["train", "stylegan2", "--data", "{folder}", "--kimg", "1", "--out", "{out}"]
METRICS = ["metrics", "{good}"]
INVERT = ["invert", "{good}", *M, "--method", "w", "--steps", "1", "--out", "{out}"]

CASES = [
    # images (decoded by `metrics`, which needs no model)
    Case("img-not-an-image", [*METRICS, "{img}/notimage.png"], r"notimage.png: cannot read image"),
    Case("img-empty-file", [*METRICS, "{img}/empty.png"], r"cannot read image"),
    Case("img-truncated-png", [*METRICS, "{img}/truncated.png"], r"truncated.png: cannot read"),
    Case("img-truncated-jpeg", [*METRICS, "{img}/truncated.jpg"], r"cannot read image"),
    Case("img-1x1", [*METRICS, "{img}/one.png", "--resolution", "16"], r"1x1 is too small"),
    Case("img-5000x1", [*METRICS, "{img}/strip.png", "--resolution", "16"], r"too small"),
    Case("img-aspect-5", [*METRICS, "{img}/wide.png", "--resolution", "16"], r"aspect ratio"),
    Case("img-bomb-100MP", [*METRICS, "{img}/bomb.png"], r"10000x10000 is larger than", proc=True),
    Case("img-bomb-1600MP", [*METRICS, "{img}/bigbomb.png"], r"larger than|exceeds", proc=True),
    Case("img-nan-pixels", [*METRICS, "{img}/nan.tif"], r"1 pixels are NaN"),
    Case("img-inf-pixels", [*METRICS, "{img}/inf.tif"], r"NaN or infinite"),
    Case("img-float-not-unit", [*METRICS, "{img}/float255.tif"], r"must lie in \[0, 1\]"),
    Case("img-int32-range", [*METRICS, "{img}/int32.tif"], r"outside 0..65535"),
    Case("img-eps-named-png", [*METRICS, "{img}/eps.png"], r"cannot read image"),
    Case("img-gif-named-png", [*METRICS, "{img}/gif.png"], r"cannot read image"),
    Case("img-corrupt-icc", [*METRICS, "{img}/badicc.png"], r"ICC colour profile"),
    Case("img-fifo", [*METRICS, "{img}/fifo.png"], r"is a FIFO", proc=True),
    Case("img-device", [*METRICS, "/dev/zero"], r"is a device", proc=True),
    Case("img-missing", [*METRICS, "{img}/nothere.png"], r"no such file|does not exist"),
    Case("metrics-resolution-0", [*METRICS, "{good}", "--resolution", "0"], r"--resolution"),
    Case("metrics-resolution-huge", [*METRICS, "{good}", "--resolution", "100000"],
         r"--resolution"),
    # datasets
    Case("data-info-bad-files", ["data", "info", "{folder}", "--resolution", "16"],
         r"2 of 5 images .*bad.png"),
    Case("data-info-fifo", ["data", "info", "{fifofolder}", "--resolution", "16"],
         r"1 of 2 images .*b.png", proc=True),
    Case("data-info-zip-bomb", ["data", "info", "{root}/zipbomb.zip"], r"inflate to 4.0 GiB",
         proc=True),
    Case("data-info-not-dataset", ["data", "info", "{root}/afile"], r"not a folder or .zip"),
    Case("data-info-resolution-0", ["data", "info", "{folder}", "--resolution", "0"],
         r"--resolution"),
    Case("data-sample-trunc-nan", ["data", "sample", *M, "--n", "2", "--trunc", "nan",
                                   "--out", "{out}.zip"], r"--trunc must be a finite", proc=True),
    Case("data-sample-out-folder", ["data", "sample", *M, "--n", "2", "--out", "{root}/outdir.zip"],
         r"is a folder", proc=True),
    Case("data-sample-batch-huge", ["data", "sample", *M, "--n", "2", "--batch", "100000000",
                                    "--out", "{out}.zip"], r"--batch", proc=True),
    # checkpoints (`info` loads and describes them)
    Case("ck-random-bytes", ["info", "{ck}/random.pkl"], r"not a readable NVIDIA pickle"),
    Case("ck-empty", ["info", "{ck}/empty.pkl"], r"unknown checkpoint format|not a readable"),
    Case("ck-truncated", ["info", "{ck}/truncated.pkl"], r"not a readable NVIDIA pickle"),
    Case("ck-posix-system", ["info", "{ck}/system.pkl"], r"refusing to load: .*posix.system"),
    Case("ck-shared-children", ["info", "{ck}/shared.pkl"], r"expands to more than", proc=True),
    Case("ck-growing-kwargs", ["info", "{ck}/growing.pkl"], r"expands to more than", proc=True),
    Case("ck-cycle", ["info", "{ck}/cycle.pkl"], r"contains itself", proc=True),
    Case("ck-deep-nesting", ["info", "{ck}/deep.pkl"], r"nested deeper than", proc=True),
    Case("ck-memo-index", ["info", "{ck}/memo.pkl"], r"no 'G_ema' or 'G' network", proc=True),
    Case("ck-zdim-8e6-pkl", ["info", "{ck}/zdim.pkl"], r"z_dim = 8000000 is out of range",
         proc=True),
    Case("ck-zdim-8e6-json", ["info", "{ck}/zdim.safetensors"], r"z_dim|parameters", proc=True),
    Case("ck-negative-size", ["info", "{ck}/negative.pkl"], r"w_dim = -24 is out of range"),
    Case("ck-huge-resolution", ["info", "{ck}/hugeres.pkl"], r"img_resolution", proc=True),
    Case("ck-nan-weights", ["info", "{ck}/nan.pkl"], r"mapping.fc0.weight has 1 non-finite"),
    Case("ck-int-weights", ["info", "{ck}/intweights.pkl"], r"mapping.fc0.weight holds int64"),
    Case("ck-inf-native", ["info", "{ck}/inf.safetensors"], r"synthesis.b4.const has 1 non-fin"),
    Case("ck-zip-bomb", ["info", "{ck}/bomb.pt"], r"inflates \d+x", proc=True),
    Case("ck-rosinality-huge", ["info", "{ck}/rosinality_huge.pt"], r"z_dim = 8000000",
         proc=True),
    Case("ck-rosinality-not-tensors", ["info", "{ck}/rosinality_str.pt"], r"other than tensors"),
    Case("ck-fifo", ["info", "{ck}/fifo.pkl"], r"FIFO", proc=True),
    Case("ck-missing", ["info", "{ck}/nothere.pkl"], r"no such file"),
    # numbers and options, refused before the model is loaded
    Case("gen-trunc-nan", [*GEN, "--trunc", "nan"], r"--trunc must be a finite number"),
    Case("gen-trunc-inf", [*GEN, "--trunc", "inf"], r"--trunc must be a finite number"),
    Case("gen-trunc-cutoff-neg", [*GEN, "--trunc-cutoff", "-1"], r"--trunc-cutoff"),
    Case("gen-batch-0", [*GEN, "--batch", "0"], r"--batch", status=2),
    Case("gen-batch-huge", [*GEN, "--batch", "1000000000"], r"--batch", proc=True),
    Case("gen-seeds-huge-range", [*GEN[:-2], "--seeds", "0-999999999999", "--out", "{out}"],
         r"--seeds .*values", proc=True),
    Case("gen-seeds-backwards", [*GEN[:-4], "--seeds", "5-1", "--out", "{out}"], r"end before"),
    Case("gen-seeds-text", [*GEN[:-4], "--seeds", "abc", "--out", "{out}"], r"bad --seeds"),
    Case("gen-seed-above-2^32", [*GEN[:-4], "--seeds", "4294967296", "--out", "{out}"],
         r"at most 4294967295"),
    Case("gen-noise-mode", [*GEN, "--noise-mode", "loud"], r"--noise-mode"),
    Case("gen-class-negative", [*GEN, "--class", "-1"], r"--class"),
    Case("gen-device-bogus", [*GEN, "--device", "bogus"], r"--device must be"),
    Case("gen-device-meta", [*GEN, "--device", "meta"], r"--device must be"),
    Case("gen-device-xpu", [*GEN, "--device", "xpu"], r"--device must be"),
    Case("gen-out-is-file", [*GEN[:-1], "{root}/afile"], r"is an existing file"),
    Case("gen-out-under-file", [*GEN[:-1], "{root}/afile/sub"], r"is a file"),
    Case("mix-grid-huge", ["mix", *M, "--rows", "0-999", "--cols", "0-999", "--out", "{out}"],
         r"mixing grid", proc=True),
    Case("mix-trunc-nan", ["mix", *M, "--rows", "0", "--cols", "1", "--trunc", "nan",
                           "--out", "{out}"], r"--trunc"),
    Case("train-gamma-nan", [*TRAIN, "--gamma", "nan"], r"--gamma", proc=True),
    Case("train-batch-0", [*TRAIN, "--batch", "0"], r"--batch", proc=True),
    Case("train-channel-base-neg", [*TRAIN, "--channel-base", "-1"], r"--channel-base", proc=True),
    Case("train-channel-max-0", [*TRAIN, "--channel-max", "0"], r"--channel-max", proc=True),
    Case("train-map-neg", [*TRAIN, "--map", "-3"], r"--map", proc=True),
    Case("train-zdim-huge", [*TRAIN, "--z-dim", "8000000"], r"--z-dim", proc=True),
    Case("train-out-is-file", [*TRAIN[:-1], "{root}/afile"], r"existing file", proc=True),
    Case("invert-loss-nan", [*INVERT, "--loss", "mse:nan"], r"finite number"),
    Case("invert-noise-reg-nan", [*INVERT, "--noise-reg", "nan"], r"--noise-reg"),
    Case("invert-lr-nan", [*INVERT, "--lr", "nan"], r"learning rate|--lr"),
    Case("invert-codes-negative", [*INVERT, "--codes", "-3"], r"--codes"),
    Case("invert-device-meta", [*INVERT, "--device", "meta"], r"--device must be"),
    Case("ck-folder-without-weights", ["info", "{root}/outdir.zip"], r"expected one .safetensors"),
    Case("convert-out-folder", ["convert", "{model}", "{root}/outdir.zip"], r"is a folder"),
    # usage errors: one line, status 2
    Case("usage-unknown-option", [*GEN, "--bogus"], r"No such option: --bogus", status=2),
    Case("usage-missing-argument", ["info"], r"Missing argument", status=2),
    Case("usage-unknown-command", ["frobnicate"], r"No such command", status=2),
    Case("usage-not-a-number", [*GEN, "--trunc", "abc"], r"Invalid value for '--trunc'", status=2),
]


# --- running a case --------------------------------------------------------------------------

def _digest(root: Path) -> dict:
    """Name -> content hash (regular files) or kind (others, never opened: FIFOs block)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if stat.S_ISREG(st.st_mode):
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p)] = stat.S_IFMT(st.st_mode)
    return out


def check_refused_in_process(case: Case, fx: dict, out: Path) -> None:
    """Run `case` through the CLI in this process (models loaded once by the fixtures) and
    check the promise: no traceback, one `error:` line matching case.expect, the expected exit
    status, within TIME_LIMIT, no input file changed and nothing written to `out`."""
    before, t0 = _digest(fx["root"]), time.time()
    r = CliRunner().invoke(app, case.args(fx, out))
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert time.time() - t0 < TIME_LIMIT
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    assert r.exit_code == case.status, r.stderr
    assert re.search(case.expect, errors[0]), errors[0]
    assert _digest(fx["root"]) == before, "an input file was changed"
    assert not out.exists(), "a (partial) output was written"


CHILD = """
import json, os, resource, signal, sys, time
sys.path.insert(0, sys.argv[1])
from typer.testing import CliRunner
from ganprior.cli import app
from test_hostile import _digest

def alarm(*_):
    raise TimeoutError("ran past the time limit (hang)")

signal.signal(signal.SIGALRM, alarm)
root, limit = sys.argv[2], int(sys.argv[3])
for line in sys.stdin:
    args = json.loads(line)
    before, t0 = _digest(__import__("pathlib").Path(root)), time.time()
    signal.alarm(limit)
    try:
        r = CliRunner().invoke(app, args)
        res = dict(status=r.exit_code, stdout=r.stdout, stderr=r.stderr,
                   exception=None if r.exception is None or isinstance(r.exception, SystemExit)
                   else repr(r.exception))
    except TimeoutError as e:
        res = dict(status=None, stdout="", stderr="", exception=repr(e))
    signal.alarm(0)
    res.update(seconds=time.time() - t0, changed=_digest(__import__("pathlib").Path(root)) != before,
               peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps(res), flush=True)
"""


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_in_child(cases: list, fx, env, out_root: Path) -> dict:
    """Run the `proc` cases in one child process under RLIMIT_AS, each with a SIGALRM time
    limit (a blocking open() of a FIFO is interrupted too); the child's peak RSS after each
    case is a high-water mark, so each case is bounded by the value it reports."""
    lines = "".join(json.dumps(c.args(fx, out_root / c.id / "out")) + "\n" for c in cases)
    for c in cases:
        (out_root / c.id).mkdir(parents=True)
    r = subprocess.run([sys.executable, "-c", CHILD, str(Path(__file__).parent), str(fx["root"]),
                        str(TIME_LIMIT)], input=lines, capture_output=True, text=True, env=env,
                       preexec_fn=_limits, timeout=TIME_LIMIT * len(cases) + 60)
    results = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert len(results) == len(cases), r.stderr[-3000:]
    return {c.id: res for c, res in zip(cases, results)}


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return build(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def env(fx, monkeypatch):
    monkeypatch.setenv("GANPRIOR_WEIGHTS", str(fx["weights"]))
    monkeypatch.setenv("COLUMNS", "200")
    return dict(os.environ, GANPRIOR_WEIGHTS=str(fx["weights"]), COLUMNS="200",
                PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))


@pytest.fixture(scope="module")
def child_results(fx, tmp_path_factory):
    env = dict(os.environ, GANPRIOR_WEIGHTS=str(fx["weights"]), COLUMNS="200",
               PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    root = tmp_path_factory.mktemp("child")
    # cases expected to fail (xfail) last: their memory must not raise the others' high-water mark
    cases = sorted((c for c in CASES if c.proc), key=lambda c: bool(c.xfail))
    return run_in_child(cases, fx, env, root), root


def test_enough_cases():
    assert len(CASES) + len(DECODE_CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_cli(case, fx, env, tmp_path, request):
    if case.xfail:
        request.applymarker(pytest.mark.xfail(reason=case.xfail, strict=False))
    if case.proc:
        results, root = request.getfixturevalue("child_results")
        res, out = results[case.id], root / case.id / "out"
        assert res["peak_rss"] < RSS_LIMIT, f"peak RSS {res['peak_rss'] / 2**20:.0f} MiB"
        changed = res["changed"]
    else:
        out = tmp_path / "out"
        before, t0 = _digest(fx["root"]), time.time()
        r = CliRunner().invoke(app, case.args(fx, out))
        exc = None if r.exception is None or isinstance(r.exception, SystemExit) \
            else repr(r.exception)
        res = dict(status=r.exit_code, stdout=r.stdout, stderr=r.stderr, exception=exc,
                   seconds=time.time() - t0)
        changed = _digest(fx["root"]) != before
    assert res["exception"] is None, res["exception"]
    assert res["seconds"] < TIME_LIMIT
    assert "Traceback" not in res["stdout"] + res["stderr"], res["stderr"]
    errors = [line for line in res["stderr"].splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res["stderr"]
    assert res["status"] == case.status, res["stderr"]
    assert re.search(case.expect, errors[0]), errors[0]
    assert not changed, "an input file was changed"
    assert not any(out.parent.glob("out*")), "a (partial) output was written"


# --- environment: read-only and full file systems --------------------------------------------

def _mount_tmpfs(path: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


@pytest.mark.parametrize("options,expect", [("ro,size=1m", r"not writable|Read-only"),
                                            ("size=12k", r"No space left")])
def test_read_only_and_full_disk(fx, env, tmp_path, options, expect):
    """Needs root to mount a tiny tmpfs; elsewhere a read-only folder is simulated by chmod."""
    mnt = tmp_path / "mnt"
    mounted = _mount_tmpfs(mnt, options)
    if not mounted:
        if "ro" not in options or os.geteuid() == 0:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mnt.mkdir()
        mnt.chmod(0o555)
    try:
        r = CliRunner().invoke(app, ["generate", "--model", str(fx["model"]), "--seeds", "0-40",
                                     "--out", str(mnt / "gen")])
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert r.exit_code == 1 and len(errors) == 1, (r.stderr, r.exception)
        assert re.search(expect, errors[0])
        assert r.exception is None or isinstance(r.exception, SystemExit)
        leftovers = [p.name for p in mnt.rglob("*") if p.name.startswith(".")]
        assert not leftovers, f"temporary files left behind: {leftovers}"
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], check=True)


# --- weights ---------------------------------------------------------------------------------

def test_weights_without_a_known_hash_are_not_ok(fx, env, tmp_path, monkeypatch):
    from ganprior import weights
    monkeypatch.setenv("GANPRIOR_WEIGHTS", str(tmp_path))
    (tmp_path / weights.REGISTRY["inception-fid"].filename).write_bytes(os.urandom(64))
    (tmp_path / weights.REGISTRY["lpips-vgg"].filename).write_bytes(os.urandom(64))
    r = CliRunner().invoke(app, ["weights", "verify"])
    assert r.exit_code == 1
    assert "inception-fid: unverified (no known hash)" in r.stdout and "ok" not in r.stdout
    assert "lpips-vgg" in r.stdout and "mismatch" in r.stdout  # its hash is known
    assert weights.verify("vgg16") == "missing"


def test_corrupt_optional_weights_are_one_line(fx, env, tmp_path, monkeypatch):
    from ganprior import weights
    from ganprior.errors import GanpriorError
    monkeypatch.setenv("GANPRIOR_WEIGHTS", str(tmp_path))
    (tmp_path / weights.REGISTRY["vgg16"].filename).write_bytes(os.urandom(256))
    with pytest.raises(GanpriorError, match=r"corrupt vgg16 weights"):
        weights.load_state("vgg16")
    r = CliRunner().invoke(app, ["invert", str(fx["good"]), "--model", str(fx["model"]),
                                 "--method", "w", "--steps", "1", "--loss", "auto",
                                 "--out", str(tmp_path / "inv")])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 0, r.stderr  # --loss auto falls back, and says why
    record = json.loads((tmp_path / "inv" / "good.json").read_text())
    assert record["loss"] == "mse:1+ms-ssim:0.1"
    assert "corrupt vgg16 weights" in record["note"]


# --- decoding: the right pixels, not just no crash -------------------------------------------

def _gray16(path, value):
    return _save(np.full((16, 16), value, np.uint16), path)


def _rgba(path, rgba):
    return _save(np.tile(np.array(rgba, np.uint8), (16, 16, 1)), path)


def _exif_rotated(path):
    a = np.zeros((32, 16, 3), np.uint8)
    a[:16] = 255  # stored: top half white; orientation 6 = rotate 90 degrees clockwise to view
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(path, exif=exif)
    return path


def _palette_transparent(path):
    im = Image.new("P", (16, 16), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.save(path, transparency=1)  # palette entry 1 (red) is fully transparent
    return path


def _with_profile(path, profile):
    im = Image.fromarray(np.full((16, 16, 3), (200, 60, 30), np.uint8))
    im.save(path, icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile(profile)).tobytes())
    return path


DECODE_CASES = {
    # name: (writer, expected [C] values in [0, 1] of the centre pixel, load kwargs)
    "16bit-dark-stays-dark": (lambda p: _gray16(p, 1000), [1000 / 65535] * 3, {}),
    "16bit-full-scale": (lambda p: _gray16(p, 65535), [1.0] * 3, {}),
    "16bit-mid": (lambda p: _gray16(p, 32768), [32768 / 65535] * 3, {}),
    "float-tiff-unit-range": (lambda p: _save(np.full((16, 16), 0.25, np.float32), p),
                              [0.25] * 3, {}),
    "int32-in-16bit-range": (lambda p: _save(np.full((16, 16), 6553, np.int32), p),
                             [6553 / 65535] * 3, {}),
    "alpha-0-is-white": (lambda p: _rgba(p, (255, 0, 0, 0)), [1.0, 1.0, 1.0], {}),
    "alpha-opaque-kept": (lambda p: _rgba(p, (255, 0, 0, 255)), [1.0, 0.0, 0.0], {}),
    "alpha-half-on-white": (lambda p: _rgba(p, (0, 0, 0, 102)), [153 / 255] * 3, {}),
    "palette-transparency-white": (_palette_transparent, [1.0, 1.0, 1.0], {}),
    "gray-to-rgb": (lambda p: _save(np.full((16, 16), 51, np.uint8), p), [0.2] * 3, {}),
    "rgb-to-luma": (lambda p: _save(np.tile(np.array([255, 0, 0], np.uint8), (16, 16, 1)), p),
                    [0.299], {"channels": 1}),
    "srgb-profile-is-identity": (lambda p: _with_profile(p, "sRGB"),
                                 [200 / 255, 60 / 255, 30 / 255], {}),
}


@pytest.mark.parametrize("name", list(DECODE_CASES))
def test_decoding_gives_the_right_values(name, tmp_path):
    writer, expected, kw = DECODE_CASES[name]
    path = writer(tmp_path / ("x.tif" if "tiff" in name or "int32" in name else "x.png"))
    x = load_image(path, **kw)
    centre = (x[0, :, 8, 8] + 1) / 2
    assert centre.tolist() == pytest.approx(expected, abs=1.5 / 255)


def test_exif_orientation_is_applied(tmp_path):
    x = load_image(_exif_rotated(tmp_path / "r.png"))
    assert tuple(x.shape[-2:]) == (16, 32)  # viewed: 32 wide, 16 high
    assert x[0, :, :, 17:].min() == 1 and x[0, :, :, :15].max() == -1  # white moved right


def _swapped_primaries_profile() -> bytes:
    """sRGB's ICC profile with the red and blue primaries (rXYZ, bXYZ tags) exchanged: same
    tone curves, so a pixel (r, g, b) in it is the sRGB colour (b, g, r)."""
    b = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack(">I", b[128:132])[0]
    entry = {bytes(b[132 + 12 * i:136 + 12 * i]): 132 + 12 * i for i in range(count)}
    r, bl = entry[b"rXYZ"], entry[b"bXYZ"]
    b[r + 4:r + 12], b[bl + 4:bl + 12] = b[bl + 4:bl + 12], b[r + 4:r + 12]
    b[84:100] = bytes(16)  # profile ID (an MD5 of the old content): unset
    return bytes(b)


def test_icc_profile_is_converted_to_srgb(tmp_path):
    path = tmp_path / "swapped.png"
    Image.fromarray(np.full((16, 16, 3), (200, 60, 30), np.uint8)).save(
        path, icc_profile=_swapped_primaries_profile())
    x = (load_image(path)[0, :, 8, 8] + 1) / 2 * 255
    assert x.tolist() == pytest.approx([30, 60, 200], abs=1.01)


def test_resizing_prints_a_notice_and_quiet_silences_it(tmp_path, caplog):
    path = _save(np.zeros((16, 32, 3), np.uint8), tmp_path / "w.png")
    with caplog.at_level("WARNING", logger="ganprior.images"):
        load_image(path, resolution=8)
        load_image(path, resolution=8, quiet=True)
        load_image(_save(np.zeros((8, 8, 3), np.uint8), tmp_path / "s.png"), resolution=8)
    notes = [r.getMessage() for r in caplog.records]
    assert notes == [f"note: {path}: 32x16 centre-cropped to 16x16, downscaled to 8x8"]


def test_wide_image_is_fine_when_not_resized(tmp_path):
    x = load_image(_save(np.zeros((16, 80, 3), np.uint8), tmp_path / "wide.png"))
    assert tuple(x.shape) == (1, 3, 16, 80)
    with pytest.raises(ImageError, match="aspect ratio above 4:1"):
        load_image(tmp_path / "wide.png", resolution=16)

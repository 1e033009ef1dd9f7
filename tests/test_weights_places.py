"""Optional weights found where users already keep them (torchvision's cache, the installed
lpips package), streamed hash-checked downloads, and what `weights list` says about them."""
import hashlib
import http.server
import sys
import threading

import pytest
import torch
from conftest import run_cli
from rich.console import Console

from ganprior import weights
from ganprior.errors import GanpriorError

LIN_CHANNELS = (64, 128, 256, 512, 512)
FIND_LPIPS_PACKAGE = weights.lpips_package_dir  # before any test replaces it


@pytest.fixture
def places(tmp_path, monkeypatch):
    """An empty weights folder and torchvision cache, every place searched (the suite's
    GANPRIOR_WEIGHTS_ONLY unset), and no lpips package unless a test lays one out."""
    own, hub = tmp_path / "own", tmp_path / "torch" / "hub" / "checkpoints"
    own.mkdir()
    hub.mkdir(parents=True)
    monkeypatch.setenv("GANPRIOR_WEIGHTS", str(own))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("GANPRIOR_WEIGHTS_ONLY", raising=False)
    monkeypatch.setattr(weights, "lpips_package_dir", lambda: None)
    return own, hub


def fake_lpips_package(root, lin_state):
    """A folder laid out like the lpips wheel: lpips/__init__.py (which fails when imported,
    so a lookup that imports it shows) and lpips/weights/v0.1/vgg.pth."""
    pkg = root / "lpips"
    (pkg / "weights" / "v0.1").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('lpips was imported')\n")
    torch.save(lin_state, pkg / "weights" / "v0.1" / "vgg.pth")
    return pkg / "weights" / "v0.1" / "vgg.pth"


def official_lin_state(seed=0, channels=LIN_CHANNELS):
    g = torch.Generator().manual_seed(seed)
    return {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
            for i, c in enumerate(channels)}


def test_torchvision_cache_honours_torch_home_after_the_weights_folder(places, monkeypatch):
    own, hub = places
    assert weights.find("vgg16") is None
    (hub / "vgg16-397923af.pth").write_bytes(b"stand-in")  # the lookup, not the content
    assert weights.locate("vgg16") == (weights.TORCH_CACHE, hub / "vgg16-397923af.pth")
    (own / "vgg16-397923af.pth").write_bytes(b"own copy")
    assert weights.locate("vgg16") == (weights.WEIGHTS_FOLDER, own / "vgg16-397923af.pth")
    # torchvision does not publish NVIDIA's Inception: never looked for in its cache
    (hub / "inception-2015-12-05.pt").write_bytes(b"x")
    assert weights.find("inception-fid") is None
    monkeypatch.setenv("GANPRIOR_WEIGHTS_ONLY", "1")
    (own / "vgg16-397923af.pth").unlink()
    assert weights.find("vgg16") is None


def test_lpips_package_found_without_importing_it(places, tmp_path, monkeypatch):
    # the real lookup this time, of a fake package put first on sys.path
    monkeypatch.setattr(weights, "lpips_package_dir", FIND_LPIPS_PACKAGE)
    monkeypatch.delitem(sys.modules, "lpips", raising=False)
    state = official_lin_state()
    vgg_pth = fake_lpips_package(tmp_path / "site", state)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert weights.lpips_package_dir() == vgg_pth.parents[2]
    assert weights.locate("lpips-vgg") == (weights.LPIPS_PACKAGE, vgg_pth)
    assert "lpips" not in sys.modules
    # the official key names (lin0.model.1.weight ...) are what LPIPS reads
    from ganprior.nets.vgg import LPIPS, VGG16Features
    net = LPIPS(VGG16Features(), weights.load_state("lpips-vgg"))
    for i, lin in enumerate(net.lins):
        assert torch.equal(lin, state[f"lin{i}.model.1.weight"])


def test_lpips_file_of_another_backbone_is_one_clear_error(tmp_path):
    from ganprior.nets.vgg import _check_lin_state
    alex = official_lin_state(channels=(64, 192, 384, 256, 256))  # lpips' alex.pth shapes
    with pytest.raises(GanpriorError, match=r"lin1.model.1.weight is of shape \[1, 192, 1, 1\], "
                                            r"expected \[1, 128, 1, 1\]"):
        _check_lin_state(alex, tmp_path / "vgg.pth")
    _check_lin_state(official_lin_state(), tmp_path / "vgg.pth")


def test_lpips_distance_is_the_weighted_squared_difference():
    """Hand-made unit features: LPIPS = sum over layers of sum_c w_c (x_c - y_c)^2, averaged
    over space."""
    from ganprior.nets.vgg import LPIPS, VGG16Features
    lin = {f"lin{i}.model.1.weight": torch.zeros(1, c, 1, 1) for i, c in enumerate(LIN_CHANNELS)}
    lin["lin0.model.1.weight"][0, :2] = torch.tensor([2.0, 3.0]).reshape(2, 1, 1)
    lin["lin2.model.1.weight"][0, 0] = 5.0
    net = LPIPS(VGG16Features(), lin)
    fa = [torch.zeros(1, c, 2, 2) for c in LIN_CHANNELS]
    fb = [torch.zeros(1, c, 2, 2) for c in LIN_CHANNELS]
    fa[0][0, 0] = 1.0  # channel 0 differs by 1 everywhere
    fb[0][0, 1, 0, 0] = 1.0  # channel 1 differs by 1 at one of four pixels
    fa[2][0, 0, :, 0] = 0.5  # layer 2, channel 0: 0.5 at two of four pixels
    want = 2 * 1 + 3 * (1 / 4) + 5 * (0.25 * 2 / 4)
    assert net.distance(fa, fb).item() == pytest.approx(want, abs=1e-6)
    # features are unit vectors over channels (the official normalize_tensor)
    f = net.features(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert torch.allclose(f[0].square().sum(1), torch.ones(2, 16, 16), atol=1e-4)


def test_offline_download_is_one_line_and_leaves_no_file(places, monkeypatch):
    own, hub = places
    monkeypatch.setitem(weights.REGISTRY, "vgg16", weights.WeightFile(
        "vgg16", "vgg16-397923af.pth", "http://127.0.0.1:9/vgg16.pth", "397923af", "test",
        also_in=(weights.TORCH_CACHE,)))
    r = run_cli("weights", "download", "vgg16", "--timeout", "2", ok=False)
    assert r.exit_code == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot download vgg16 from "
                                                   "http://127.0.0.1:9/vgg16.pth (")
    assert f"offline? Put vgg16-397923af.pth into {own} by hand" in lines[0]
    assert str(hub) in lines[0]  # ... or into torchvision's cache
    assert list(own.iterdir()) == [] and list(hub.iterdir()) == []


@pytest.fixture
def server():
    """A local HTTP server: set `.payload` to the bytes it serves; yields its base URL."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(Handler.payload)))
            self.end_headers()
            self.wfile.write(Handler.payload)

        def log_message(self, *args):  # keep the test output clean
            pass
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    httpd.handler = Handler
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def serve(monkeypatch, server, payload, prefix):
    server.handler.payload = payload
    url = f"http://127.0.0.1:{server.server_address[1]}/vgg16.pth"
    monkeypatch.setitem(weights.REGISTRY, "vgg16", weights.WeightFile(
        "vgg16", "vgg16-397923af.pth", url, prefix, "test", also_in=(weights.TORCH_CACHE,)))


def test_download_with_the_wrong_hash_is_refused_and_keeps_nothing(places, server, monkeypatch):
    own, _ = places
    served = b"not VGG16 " * 1000
    serve(monkeypatch, server, served, "397923af")  # not the hash of what is served
    (own / "vgg16-397923af.pth").write_bytes(b"what was there")
    with pytest.raises(GanpriorError, match=r"downloaded vgg16 .* sha256 does not start with "
                                            r"397923af: refused, nothing was written"):
        weights.download("vgg16", timeout=5)
    assert [p.name for p in own.iterdir()] == ["vgg16-397923af.pth"]  # no partial file
    assert (own / "vgg16-397923af.pth").read_bytes() == b"what was there"


def test_download_streams_and_checks_the_hash(places, server, monkeypatch):
    own, hub = places
    served = bytes(range(256)) * 4096  # 1 MiB: several reads of torch.hub's chunk size
    serve(monkeypatch, server, served, hashlib.sha256(served).hexdigest()[:8])
    assert weights.download("vgg16", timeout=5) == own / "vgg16-397923af.pth"
    assert (own / "vgg16-397923af.pth").read_bytes() == served
    assert weights.verify("vgg16") == "ok"
    # present and verified: not fetched again (the server now serves something else)
    (own / "vgg16-397923af.pth").rename(hub / "vgg16-397923af.pth")
    server.handler.payload = b"changed"
    assert weights.download("vgg16", timeout=5) == hub / "vgg16-397923af.pth"
    assert list(own.iterdir()) == []


def test_weights_list_fits_80_columns_says_where_and_what_each_enables(places, monkeypatch):
    own, hub = places
    (hub / "vgg16-397923af.pth").write_bytes(b"stand-in")  # found, hash mismatch
    (own / "inception-2015-12-05.pt").write_bytes(b"x")  # found, no known hash
    import ganprior.cli.weights as cli
    monkeypatch.setattr(cli, "console", Console(width=200))  # no wrapping: the layout's width
    out = run_cli("weights", "list").stdout.splitlines()
    paths = [line for line in out if str(own.parent) in line]
    assert all(len(line) <= 80 for line in out if line not in paths), out
    # a path is printed whole, on its own line after a short label
    assert all(len(line.split(str(own.parent))[0]) <= 17 for line in paths)
    rows = {line.split()[0]: line.split(None, 1)[1] for line in out[1:1 + len(weights.REGISTRY)]}
    assert rows["vgg16"].split() == ["hash", "mismatch", "torchvision", "cache"]
    assert rows["lpips-vgg"].split() == ["missing", "-"]
    assert rows["vgg19"].split() == ["missing", "-"]
    assert rows["inception-fid"].split() == ["unverified", "weights", "folder"]
    text = "\n".join(out)
    for w in weights.REGISTRY.values():
        assert f"  {w.name}: {w.enables}" in out
    assert "--loss vgg" in text and "LPIPS" in text and "FID/KID" in text
    assert f"  vgg16: {hub / 'vgg16-397923af.pth'}" in out
    assert f"  inception-fid: {own / 'inception-2015-12-05.pt'}" in out
    order = [out.index(f"     {own}"), out.index(f"     {hub}")]
    assert order == sorted(order)  # weights folder first, then torchvision's cache


def test_weights_verify_says_where_each_file_was_found(places):
    _, hub = places
    (hub / "vgg16-397923af.pth").write_bytes(b"stand-in")
    r = run_cli("weights", "verify", ok=False)
    assert r.exit_code == 1
    assert "vgg16: hash mismatch (expected sha256 397923af...), in torchvision cache" in r.stdout
    assert "lpips-vgg: missing\n" in r.stdout


def test_a_silent_server_times_out_with_the_offline_error(places, monkeypatch):
    """A server that accepts the connection and never answers: `timeout` ends the wait."""
    import socket
    own, _ = places
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # the kernel completes the handshake; nothing ever reads or replies
    monkeypatch.setitem(weights.REGISTRY, "vgg16", weights.WeightFile(
        "vgg16", "vgg16-397923af.pth", f"http://127.0.0.1:{silent.getsockname()[1]}/v.pth",
        "397923af", "test"))
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(_error_of_download(0.5)), daemon=True)
    worker.start()
    worker.join(10)
    silent.close()
    assert not worker.is_alive(), "the download ignored its timeout"
    assert "timed out" in outcome[0] and "offline?" in outcome[0]
    assert socket.getdefaulttimeout() is None  # restored for the rest of the process
    assert list(own.iterdir()) == []


def _error_of_download(timeout):
    try:
        weights.download("vgg16", timeout=timeout)
    except GanpriorError as e:
        return str(e)
    return "no error"

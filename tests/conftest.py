import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

# Waiting OpenMP threads sleep instead of spinning: on a loaded 2-core machine (CI beside other
# jobs) spinning threads starve each other (a README walk-through took 170 s spinning, 23 s
# sleeping). Set before torch loads OpenMP; subprocesses of the tests inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from ganprior.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))

SHARED = Path(os.environ.get("GANPRIOR_SHARED", Path(__file__).resolve().parents[2] / "shared"))
PARITY = SHARED / "fixtures" / "stylegan2_parity"


def perturb_(net, seed=0):
    """Make every bias, noise strength and w_avg non-zero so no term can hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(net.named_parameters()) + list(net.named_buffers()):
            if name.endswith(("bias", "noise_strength", "w_avg")):
                t.add_(0.1 * torch.randn(t.shape, generator=g))
    return net.eval()


def rosinality_shaped_stylegan2(res=16, conv_clamp=None, seed=0):
    """The smallest generator rosinality's Generator can build: 512 channels up to 32 px
    (channel_multiplier 1), z_dim == w_dim."""
    torch.manual_seed(seed)
    G = StyleGAN2Generator(z_dim=24, c_dim=0, w_dim=24, img_resolution=res,
                           mapping_kwargs=dict(num_layers=2),
                           synthesis_kwargs=dict(channel_base=16384, channel_max=512,
                                                 conv_clamp=conv_clamp))
    return perturb_(G, seed)


def small_stylegan2(res=32, arch="skip", c_dim=0, conv_clamp=None, seed=0, with_d=False):
    torch.manual_seed(seed)
    G = StyleGAN2Generator(z_dim=16, c_dim=c_dim, w_dim=24, img_resolution=res,
                           mapping_kwargs=dict(num_layers=2),
                           synthesis_kwargs=dict(channel_base=256, channel_max=32,
                                                 architecture=arch, conv_clamp=conv_clamp))
    perturb_(G, seed)
    if not with_d:
        return G
    D = StyleGAN2Discriminator(c_dim=c_dim, img_resolution=res, img_channels=3,
                               channel_base=256, channel_max=32,
                               epilogue_kwargs=dict(mbstd_group_size=2))
    return G, perturb_(D, seed + 1)


@pytest.fixture(autouse=True)
def _weights_from_the_weights_folder_only(monkeypatch):
    """Optional weights a developer keeps elsewhere (torchvision's cache, an installed lpips)
    must not change what the tests see; the tests of that search unset this."""
    monkeypatch.setenv("GANPRIOR_WEIGHTS_ONLY", "1")


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny tensors on a shared, loaded 2-core machine run
    many times faster on one thread than on two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def trap(tmp_path, monkeypatch):
    """Path that appears if anything executes the source embedded in a test pickle."""
    path = tmp_path / "trap_fired"
    monkeypatch.setenv("GANPRIOR_TRAP", str(path))
    return path


def parity_case(name):
    from safetensors.torch import load_file
    assert PARITY.exists(), f"parity fixtures not found at {PARITY} (set GANPRIOR_SHARED)"
    cfg = json.loads((PARITY / f"{name}.config.json").read_text())
    return (cfg, load_file(str(PARITY / f"{name}.params.safetensors")),
            load_file(str(PARITY / f"{name}.expected.safetensors")))


def run_cli(*args, ok=True):
    """`ganprior ARGS` in-process (typer's CliRunner); with ok, asserts exit status 0."""
    from typer.testing import CliRunner

    from ganprior.cli import app
    r = CliRunner().invoke(app, [str(a) for a in args])
    if ok:
        assert r.exit_code == 0, r.output + repr(r.exception)
    return r


# --- the browser tests (tests/e2e): Debian's Chromium under Playwright, and the studio served
# by uvicorn on a free local port, as `ganprior serve` runs it -------------------------------
CHROMIUM = Path(os.environ.get("GANPRIOR_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def serve():
    """serve(app) -> the URL of `app` running in a uvicorn thread until the session ends."""
    uvicorn = pytest.importorskip("uvicorn", reason="the ui extras (uvicorn) are not installed")
    servers = []

    def start(app) -> str:
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "the studio server did not start"
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium, or a skip saying what to install."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                   "(make setup installs it)")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; make setup does)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()

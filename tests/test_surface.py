"""What a user touches first: aliases, --version, -h, python -m, --projected-w, the library
names, image I/O symmetry, readable info and tables, progress off a terminal, plots."""
import io
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import typer.main
from conftest import run_cli as run, small_stylegan2
from PIL import Image
from safetensors.torch import load_file, save_file

import ganprior
from ganprior.checkpoints import save_native
from ganprior.cli import app

MINE = ("models", "info", "generate", "mix", "analyze-layers", "weights")



@pytest.fixture(scope="module")
def sg2(tmp_path_factory):
    root = tmp_path_factory.mktemp("surface")
    G = small_stylegan2(res=32)
    save_native(root / "g", G)
    return G, root / "g.safetensors"


def commands(cmd=None, path=()):
    """(path, click command) of every leaf command."""
    cmd = cmd or typer.main.get_command(app)
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from commands(sub, path + (name,))
    else:
        yield path, cmd


# --- aliases ----------------------------------------------------------------------------------
def test_network_and_outdir_give_the_same_images(sg2, tmp_path):
    _, model = sg2
    run("generate", "--model", model, "--seeds", "1,4", "--out", tmp_path / "a")
    run("generate", "--network", model, "--seeds", "1,4", "--outdir", tmp_path / "b")
    for name in ("seed0001.png", "seed0004.png", "grid.png", "latents.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_aliases_are_the_same_option_everywhere():
    for path, cmd in commands():
        for p in cmd.params:
            if "--model" in p.opts:
                assert "--network" in p.opts, path
            if path[0] in MINE and "--out" in p.opts:
                assert "--outdir" in p.opts, path
            if path[0] in MINE and "--steps" in p.opts:
                assert "--num-steps" in p.opts, path
    mix = dict(commands())[("mix",)]
    assert next(p for p in mix.params if p.name == "layers").opts == ["--layers", "--styles"]


def test_analyze_layers_blocks_and_its_deprecated_layers(sg2, tmp_path):
    _, model = sg2
    args = ["--model", model, "--steps", 1, "--codes", "1", "--fixed-codes", 1, "--loss", "mse"]
    img = tmp_path / "x.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(img)
    r = run("analyze-layers", img, *args, "--layers", "b8", "--out", tmp_path / "old")
    assert "--layers is deprecated, use --blocks" in r.output
    run("analyze-layers", img, *args, "--blocks", "b8", "--out", tmp_path / "new")
    old, new = (json.loads((tmp_path / d / "analysis.json").read_text()) for d in ("old", "new"))
    assert [r["layer"] for r in old["by_layer"]] == [r["layer"] for r in new["by_layer"]] == ["b8"]
    assert old["by_layer"][0]["psnr"] == new["by_layer"][0]["psnr"]
    r = run("analyze-layers", img, *args, "--blocks", "b8", "--layers", "b8", "--out",
            tmp_path / "both", ok=False)
    assert r.exit_code == 1 and "give only --blocks" in r.output


def test_every_option_of_every_command_has_help_and_a_default():
    for path, cmd in commands():
        for p in cmd.params:
            if p.param_type_name != "option" or p.hidden or p.name == "help":
                continue
            assert p.help, (path, p.name)
            # typer sets show_default=True on every option: a None default shows nothing, so
            # such an option must say its default in words (show_default="..." or the help)
            shown = (isinstance(p.show_default, str) or "default" in p.help.lower()
                     or (p.show_default is not False and p.default is not None))
            assert shown or p.is_flag or p.required, (path, p.name)


# --- version, -h, python -m -------------------------------------------------------------------
def test_version():
    r = run("--version")
    assert r.output.strip() == f"ganprior {ganprior.__version__}"
    assert ganprior.__version__[0].isdigit()


def test_dash_h_on_every_command():
    for path, _ in commands():
        r = run(*path, "-h")
        assert "Usage:" in r.output and "--help" in r.output, path


def test_python_m_ganprior():
    r = subprocess.run([sys.executable, "-m", "ganprior", "--version"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"ganprior {ganprior.__version__}"
    r = subprocess.run([sys.executable, "-m", "ganprior", "frobnicate"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: No such command")


def test_import_ganprior_is_light_and_names_load_lazily():
    code = ("import sys, ganprior; assert 'torch' not in sys.modules; "
            "f = ganprior.load_generator; assert 'torch' in sys.modules; "
            "from ganprior.inversion.results import load_result; assert ganprior.load_result is load_result")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    with pytest.raises(AttributeError):
        ganprior.no_such_name  # noqa: B018
    from importlib import resources
    assert resources.files("ganprior").joinpath("py.typed").is_file()


def test_load_generator_defaults_to_auto_device(sg2, monkeypatch):
    G, model = sg2
    import ganprior.device
    from ganprior.device import pick_device
    asked = []
    monkeypatch.setattr(ganprior.device, "pick_device",
                        lambda name="auto": asked.append(name) or pick_device(name))
    loaded = ganprior.load_generator(model)
    assert asked == ["auto"] and loaded.device.type == pick_device("auto").type
    monkeypatch.undo()
    with pytest.raises(ValueError, match="--device must be"):
        ganprior.load_generator(model, device="meta")


# --- generate --projected-w -------------------------------------------------------------------
def test_projected_w_renders_the_inversion_and_nvidia_npz(sg2, tmp_path):
    G, model = sg2
    with torch.no_grad():
        target = G(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(2)))
    ganprior.save_image(target, tmp_path / "photo.png")
    run("invert", tmp_path / "photo.png", "--model", model, "--method", "w+", "--steps", 4,
        "--loss", "mse", "--out", tmp_path / "inv")
    recon = np.asarray(Image.open(tmp_path / "inv" / "photo.png"))
    run("generate", "--model", model, "--projected-w", tmp_path / "inv" / "photo", "--out", tmp_path / "g1")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "g1" / "photo.png")), recon)
    w = load_file(tmp_path / "inv" / "photo.safetensors")["w"]  # [num_ws, w_dim]
    np.savez(tmp_path / "projected_w.npz", w=w[None].numpy())   # NVIDIA's layout
    run("generate", "--model", model, "--projected-w", tmp_path / "projected_w.npz", "--out", tmp_path / "g2")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "g2" / "proj00.png")), recon)
    rec = json.loads((tmp_path / "g2" / "generate.json").read_text())
    assert rec["kind"] == "nvidia-npz" and rec["labels"] == ["proj00"]


def test_projected_w_reads_generates_own_latents(sg2, tmp_path):
    _, model = sg2
    run("generate", "--model", model, "--seeds", "3,5", "--trunc", "0.7", "--out", tmp_path / "a")
    run("generate", "--model", model, "--projected-w", tmp_path / "a" / "latents.safetensors",
        "--out", tmp_path / "b")
    for name in ("seed0003.png", "seed0005.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("content,extra,msg", [
    ("npz-no-w", [], "no array 'w'"),
    ("npz-bad-shape", [], "has shape [1, 3, 24]"),
    ("npz-nan", [], "NaN"),
    ("junk", [], "not a readable safetensors file"),
    ("npz-ok", ["--seeds", "1"], "--seeds make latents from seeds"),
    ("npz-ok", ["--trunc", "0.5"], "--trunc make latents from seeds"),
    ("result-made-from-list", [], "'made_from' must be an object"),
    ("result-wrong-shape", [], "does not fit w+ on this model"),
])
def test_projected_w_bad_files_are_one_line(sg2, tmp_path, content, extra, msg):
    _, model = sg2
    f = tmp_path / "w.npz"
    ok = np.zeros((1, 8, 24), np.float32)
    if content == "npz-no-w":
        np.savez(f, z=ok)
    elif content == "npz-bad-shape":
        np.savez(f, w=ok[:, :3])
    elif content == "npz-nan":
        np.savez(f, w=ok * np.nan)
    elif content == "npz-ok":
        np.savez(f, w=ok)
    elif content.startswith("result"):  # an inversion result OUT/STEM with a broken record
        bad = content == "result-made-from-list"
        save_file({"w": torch.zeros(8 if bad else 3, 24)}, str(tmp_path / "r.safetensors"))
        (tmp_path / "r.json").write_text(json.dumps({"method": "w+", "made_from": [] if bad
                                                     else None}))
        f = tmp_path / "r"
    else:
        f.write_bytes(b"this is not a latent file")
    r = run("generate", "--model", model, "--projected-w", f, *extra, "--out", tmp_path / "o", ok=False)
    assert r.exit_code == 1 and msg in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1


# --- library: make_method, image I/O ----------------------------------------------------------
def test_make_method_refuses_unknown_options():
    from ganprior.inversion import make_method
    with pytest.raises(ValueError, match=r"make_method\('mganprior'\): unknown option code "
                                         r"\(its options: codes, layer\)"):
        make_method("mganprior", code=5)
    with pytest.raises(ValueError, match="unknown method 'zz'"):
        make_method("zz")
    m = make_method("mganprior", codes=3, layer="b8", pad_resolutions=4)  # the CLI's shared set
    assert (m.n_codes, m.layer) == (3, "b8")
    assert make_method("w+", noise_maps=True).noise_maps


def test_make_method_encoder_falls_back_to_the_zoo_encoder():
    from ganprior.inversion import make_method
    from ganprior.nets.encoder_files import load_encoder, zoo_encoder
    m = make_method("encoder", model="dcgan-digiface64")
    shipped = load_encoder(zoo_encoder("dcgan-digiface64"))[0]
    assert all(torch.equal(a, b) for a, b in zip(m.encoder.state_dict().values(),
                                                 shipped.state_dict().values()))
    with pytest.raises(ValueError, match="ships no encoder"):
        make_method("hybrid", model="stylegan2-digiface64")


def test_save_load_round_trip_is_exact_on_8bit(tmp_path):
    from ganprior.images import load_image, save_image
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    rgb[0, :3] = [[0, 0, 0], [255, 255, 255], [127, 128, 1]]
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)  # every 8-bit value
    for a, channels in ((rgb, 3), (gray, 1)):
        Image.fromarray(a).save(tmp_path / "in.png")
        x = load_image(tmp_path / "in.png", channels=channels)
        assert x.shape == (1, channels, *a.shape[:2]) and -1 <= x.min() and x.max() <= 1
        save_image(x, tmp_path / "t.png")            # [1, C, H, W] tensor
        save_image(x[0], tmp_path / "t3.png")        # [C, H, W]
        pil = load_image(tmp_path / "in.png", channels=channels, as_pil=True)
        save_image(pil, tmp_path / "p.png")          # PIL in
        for out in ("t.png", "t3.png", "p.png"):
            np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / out)), a)
        np.testing.assert_array_equal(np.asarray(pil), a)
        assert torch.equal(load_image(Image.fromarray(a), channels=channels), x)  # PIL accepted
    with pytest.raises(ValueError, match="writes one image"):
        save_image(torch.zeros(2, 3, 8, 8), tmp_path / "two.png")
    with pytest.raises(ValueError, match="uint8 array"):
        save_image(np.zeros((8, 8, 3), np.float32), tmp_path / "f.png")


# --- console output ---------------------------------------------------------------------------
def test_info_is_a_readable_summary(sg2):
    _, model = sg2
    r = run("info", model)
    assert not r.output.lstrip().startswith("{")
    text = " ".join(r.output.split())
    for piece in ("architecture stylegan2, 32x32 px, 3 channels", "latents z 16, w 24, w+ 8 x 24",
                  "split layers b4, b8, b16", "parameters G", "(no discriminator)",
                  "zoo not a zoo model"):
        assert piece in text, piece
    raw = json.loads(run("info", model, "--json").output)
    assert raw["num_ws"] == 8 and "meta" in raw


def test_info_of_a_zoo_model_summarises_its_provenance():
    text = " ".join(run("info", "stylegan2-digiface64").output.split())
    assert "C2ST 0.81 over 5 seeds" in text and "zoo stylegan2-digiface64: ok" in text
    assert "history" not in text and "G_reg_interval" not in text


@pytest.mark.parametrize("args,names", [
    (["models"], ["dcgan-digiface64", "stylegan2-digiface64"]),
    (["weights", "list"], ["vgg16", "lpips-vgg", "inception-fid"]),
])
def test_tables_fit_80_columns_one_line_per_entry(args, names, monkeypatch):
    from ganprior.cli import common
    from rich.console import Console
    monkeypatch.setattr(common, "console", Console(width=80))
    import ganprior.cli.models as models_mod
    import ganprior.cli.weights as weights_mod
    monkeypatch.setattr(models_mod, "console", common.console)
    monkeypatch.setattr(weights_mod, "console", common.console)
    out = run(*args).output.splitlines()
    assert max(len(line) for line in out) <= 80
    for n in names:  # one table line per entry, its name whole, at the start
        assert sum(line.split()[:1] == [n] for line in out) == 1, n


def test_progress_only_on_a_terminal(sg2, tmp_path):
    from ganprior.progress import close_bars, progress_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    log, tty = io.StringIO(), Terminal()
    for stream in (log, tty):
        for _ in progress_bar(range(3), desc="work", file=stream):
            pass
    assert log.getvalue() == "" and "work" in tty.getvalue() and "3/3" in tty.getvalue()
    bar = progress_bar(total=5, desc="open", file=tty)
    bar.update(2)
    close_bars()  # ends the half-drawn bar's line so an error starts on its own line
    assert bar.disable or tty.getvalue().endswith("\n")
    _, model = sg2
    r = run("generate", "--model", model, "--seeds", "0-3", "--batch", 1, "--out", tmp_path / "o")
    assert "\r" not in r.output and "batch/s" not in r.output and "it/s" not in r.output


def test_say_loss_note(capsys):
    from ganprior.cli.common import say_loss_note
    say_loss_note({"loss": "mse:1"})
    assert capsys.readouterr().err == ""
    say_loss_note({"loss": "mse:1+ms-ssim:0.1", "note": "VGG16 weights not found"})
    assert capsys.readouterr().err == "note: --loss auto used mse:1+ms-ssim:0.1: VGG16 weights not found\n"


# --- plots and labelled grids -----------------------------------------------------------------
def _axes(xs, series):
    from ganprior.plots import _figure
    fig = _figure("t", xs, series, "y", "x", 5.6, 3.4)
    fig.canvas.draw()
    return fig, fig.axes[0]


def test_numeric_x_gets_a_real_axis_and_categories_one_tick_each():
    xs = [str(k) for k in range(0, 300, 10)]  # the C2ST chart: 30 snapshots
    fig, ax = _axes(xs, {"C2ST": [0.9] * 30, "G": [0.5] * 30})
    shown = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert 3 <= len(shown) <= 10  # not 30 labels running together
    assert len(ax.get_yticks()) >= 3
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # beside the data, not over it
    _, ax = _axes(["b4", "b8", "b16"], {"PSNR": [20.0, 22.0, 25.0]})
    assert [t.get_text() for t in ax.get_xticklabels()] == ["b4", "b8", "b16"]
    assert ax.get_legend() is None  # one series: its name is the y label


def test_line_chart_svg_is_deterministic_and_png_works(tmp_path):
    from ganprior.plots import line_chart, save_line_chart
    args = ("PSNR", ["b4", "b8"], {"PSNR": [20.0, float("nan")]}, "PSNR (dB)")
    a, b = line_chart(*args), line_chart(*args)
    assert a == b and a.lstrip().startswith("<?xml") and "<svg" in a
    save_line_chart(tmp_path / "c.png", *args)
    assert Image.open(tmp_path / "c.png").format == "PNG"


def test_labelled_grid_keeps_the_cells_and_draws_labels():
    from ganprior.images import grid
    from ganprior.plots import label_height, labelled_grid
    imgs = np.random.default_rng(1).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    plain = grid(imgs, cols=2)
    out = labelled_grid(imgs, 2, ["row one", "row two"], ["a", "b"])
    top, left = label_height(), out.shape[1] - plain.shape[1]
    assert out.shape[0] == plain.shape[0] + top and left > 0
    np.testing.assert_array_equal(out[top:, left:], plain)
    assert (out[:top] < 128).any() and (out[top:, :left] < 128).any()  # text in both margins
    with pytest.raises(ValueError, match="3 row labels for 2 rows"):
        labelled_grid(imgs, 2, ["a", "b", "c"], None)


def test_loss_fallback_warning_still_issued_in_the_library(tmp_path, monkeypatch):
    from ganprior.inversion.losses import ReconstructionLoss
    monkeypatch.setenv("GANPRIOR_WEIGHTS", str(tmp_path))  # no VGG16 weights here
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = ReconstructionLoss("auto")
    assert "vgg" not in loss.name
    assert any("--loss auto" in str(w.message) for w in caught)

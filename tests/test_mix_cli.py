"""`ganprior mix`: photos (--images), latent files (--row-latents/--col-latents), seeds."""
import json

import numpy as np
import pytest
import torch
from conftest import run_cli as run, small_stylegan2
from PIL import Image
from safetensors.torch import load_file

from ganprior.checkpoints import save_native
from ganprior.images import load_image, to_uint8
from ganprior.inversion import invert, make_method

STEPS = 3



@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny StyleGAN2 (8 ws) on disk and two 32 px photos it made itself."""
    root = tmp_path_factory.mktemp("mix")
    G = small_stylegan2(res=32)
    save_native(root / "g", G)
    with torch.no_grad():
        imgs = to_uint8(G(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(3))))
    for name, a in zip("ab", imgs):
        Image.fromarray(a).save(root / f"{name}.png")
    return G, root, root / "g.safetensors"


def inverted(G, root, method):
    """What `mix --images` must have done: both photos in one batch, photo i from seed i."""
    targets = torch.cat([load_image(root / f"{n}.png", 32) for n in "ab"])
    return invert(G, targets, make_method(method), steps=STEPS, loss="mse", seed=0)


def test_images_mix_is_the_hand_built_swap(setup, tmp_path):
    G, root, model = setup
    out = tmp_path / "o"
    run("mix", "--model", model, "--images", root / "a.png", root / "b.png", "--layers", "0-3",
        "--steps", STEPS, "--loss", "mse", "--out", out)
    assert sorted(p.name for p in out.iterdir()) == [
        "a-b.png", "a.png", "b-a.png", "b.png", "latents.safetensors", "mix.json", "mix.png"]
    res = inverted(G, root, "w+")
    wa, wb = res.params["w"][0:1], res.params["w"][1:2]
    a_with_b = wa.clone()
    a_with_b[:, :4] = wb[:, :4]
    b_with_a = torch.cat([wa[:, :4], wb[:, 4:]], dim=1)
    saved = load_file(out / "latents.safetensors")
    # grid order: (a, a), (a, b), (b, a), (b, b)
    assert torch.equal(saved["ws"][1], a_with_b[0]) and torch.equal(saved["ws"][2], b_with_a[0])
    assert torch.equal(saved["ws"][0], wa[0]) and torch.equal(saved["ws"][3], wb[0])
    with torch.no_grad():
        expected = to_uint8(G.synthesize(a_with_b, noise_mode="const"))[0]
    np.testing.assert_array_equal(np.asarray(Image.open(out / "a-b.png")), expected)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "a.png")), to_uint8(res.images[:1])[0])
    rec = json.loads((out / "mix.json").read_text())
    assert rec["layers"] == [0, 1, 2, 3] and rec["method"] == "w+"
    assert rec["reconstructions"]["a"]["psnr"] == pytest.approx(res.psnr[0])
    assert rec["reconstructions"]["b"]["psnr"] == pytest.approx(res.psnr[1])
    assert rec["files"]["a-b.png"] == {"row": "a", "col": "b", "index": 1}


def test_padinv_mix_keeps_the_row_photos_padding_maps(setup, tmp_path):
    G, root, model = setup
    out = tmp_path / "o"
    run("mix", "--model", model, "--images", root / "a.png", root / "b.png", "--styles", "4-7",
        "--method", "padinv", "--num-steps", STEPS, "--loss", "mse", "--out", out)
    res = inverted(G, root, "padinv")
    p = {k: v[0:1] for k, v in res.params.items()}  # photo a's maps and constant ...
    p["w"] = torch.cat([res.params["w"][0:1, :4], res.params["w"][1:2, 4:]], dim=1)  # b's 4-7
    with torch.no_grad():
        expected = to_uint8(make_method("padinv").render(G, p))[0]
    np.testing.assert_array_equal(np.asarray(Image.open(out / "a-b.png")), expected)


def test_latent_files_as_rows_and_seeds_as_columns(setup, tmp_path):
    G, root, model = setup
    run("invert", root / "a.png", "--model", model, "--method", "w+", "--steps", STEPS,
        "--loss", "mse", "--out", tmp_path / "inv")
    run("mix", "--model", model, "--row-latents", tmp_path / "inv" / "a", "--cols", "5",
        "--layers", "2,6", "--out", tmp_path / "m")
    w = load_file(tmp_path / "inv" / "a.safetensors")["w"][None]
    with torch.no_grad():
        col = G.z_to_w(G.z_from_seed(5))
    expected = w.clone()
    expected[:, [2, 6]] = col[:, [2, 6]]
    saved = load_file(tmp_path / "m" / "latents.safetensors")
    assert torch.allclose(saved["ws"][0], expected[0], atol=0, rtol=0)
    assert (tmp_path / "m" / "a-5.png").exists()
    # the mix's own latents render back through generate --projected-w
    run("generate", "--model", model, "--projected-w", tmp_path / "m" / "latents.safetensors",
        "--out", tmp_path / "g")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "g" / "latent0000.png")),
                                  np.asarray(Image.open(tmp_path / "m" / "a-5.png")))


def test_styles_is_layers(setup, tmp_path):
    _, _, model = setup
    run("mix", "--model", model, "--rows", "1", "--cols", "2", "--layers", "1,3", "--out", tmp_path / "a")
    run("mix", "--network", model, "--rows", "1", "--cols", "2", "--styles", "1,3", "--outdir", tmp_path / "b")
    for name in ("1-2.png", "mix.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert torch.equal(load_file(tmp_path / "a" / "latents.safetensors")["ws"],
                       load_file(tmp_path / "b" / "latents.safetensors")["ws"])
    # the column seed's layers 1 and 3, the row seed's others
    ws = load_file(tmp_path / "a" / "latents.safetensors")
    assert torch.equal(ws["ws"][0, [1, 3]], ws["col_ws"][0, [1, 3]])
    assert torch.equal(ws["ws"][0, [0, 2, 4, 5, 6, 7]], ws["row_ws"][0, [0, 2, 4, 5, 6, 7]])


@pytest.mark.parametrize("args,status,msg", [
    (["--images", "{root}/a.png", "{root}/missing.png"], 1, "missing.png: no such file"),
    (["--images", "{root}/a.png"], 2, "requires 2 arguments"),
    (["--images", "{root}/a.png", "{root}/b.png", "--layers", "0-99"], 1, "out of range 0..7"),
    (["--images", "{root}/a.png", "{root}/b.png", "--method", "z"], 1, "--method must be w+ or padinv"),
    (["--images", "{root}/a.png", "{root}/b.png", "--rows", "1"], 1, "leave out --rows"),
    (["--rows", "1"], 1, "give the cols as seeds"),
    (["--rows", "", "--cols", "2"], 1, "--rows"),
    (["--rows", "1", "--cols", "2", "--col-latents", "{root}/a.png"], 1, "exactly one of them"),
    (["--rows", "1", "--col-latents", "{root}/a.png"], 1, "not a readable safetensors file"),
])
def test_bad_input_is_one_line(setup, tmp_path, args, status, msg):
    _, root, model = setup
    r = run("mix", "--model", model, "--steps", 1, "--out", tmp_path / "o",
            *[a.format(root=root) for a in args], ok=False)
    assert r.exit_code == status, r.output
    assert msg in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "o" / "mix.json").exists()


def test_a_photo_named_mix_does_not_lose_its_reconstruction(setup, tmp_path):
    _, root, model = setup
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "mix.png").write_bytes((root / "a.png").read_bytes())
    run("mix", "--model", model, "--images", tmp_path / "in" / "mix.png", root / "b.png",
        "--steps", 1, "--out", tmp_path / "o")
    rec = json.loads((tmp_path / "o" / "mix.json").read_text())
    assert "mix_image" in rec["reconstructions"]
    assert (tmp_path / "o" / "mix_image.png").exists() and (tmp_path / "o" / "mix.png").exists()

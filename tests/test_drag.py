"""DragGAN engine (ganprior.editing.drag / tracking): the maths on hand-made feature maps, the
session's latent modes, its fixed area, exact save/restore, and a real drag on the embedded
64 px model."""
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import small_stylegan2
from ganprior.editing.drag import (DragSession, DragSettings, animation_frames, before_after,
                                   default_layer, feature_names, fixed_area_loss, motion_loss,
                                   render_points, scaled_radii, write_animation)
from ganprior.editing.tracking import (PaperTracker, RobustTracker, reference_features,
                                       resized_at, shifted_at)
from ganprior.nets.dcgan import DCGANGenerator


@pytest.fixture(scope="module")
def G32():
    return small_stylegan2(res=32)


def start_ws(G, seed=0):
    z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(seed))
    return G.z_to_w(z).detach()


# --- settings scaled with resolution ------------------------------------------------------------
@pytest.mark.parametrize("res, want", [
    (512, (3, 12, 2)),        # the paper's values
    (1024, (6, 24, 4)),       # doubled
    (256, (3, 6, 1)),         # r1 1.5 -> floor 3, d 1
    (128, (3, 4, 1)),         # r2 3 -> floor 4
    (64, (3, 4, 1)),          # 0.375 / 1.5 / 0.25 -> the floors
])
def test_radii_scale_from_the_paper_with_floors(res, want):
    r = scaled_radii(res)
    assert (r["r1"], r["r2"], r["d"]) == pytest.approx(want)


def test_default_block_is_the_sixth_or_one_octave_below_the_image():
    blocks = lambda res: [f"b{2 ** i}" for i in range(2, int(math.log2(res)) + 1)]  # noqa: E731
    assert default_layer(blocks(512), 512) == "b128"   # official: the 6th block
    assert default_layer(blocks(256), 256) == "b128"
    assert default_layer(blocks(128), 128) == "b128"   # 6th block = the last one
    assert default_layer(blocks(64), 64) == "b32"      # StyleGAN2 64 px: 5 blocks
    assert default_layer(blocks(32)[:-1] + ["b32"], 64) == "b32"  # DCGAN 64 px: b4..b32


def test_feature_names_follow_the_maps_sizes(G32):
    with torch.no_grad():
        _, feats = G32.synthesize_with_features(start_ws(G32))
    names = feature_names(feats)
    assert names[:-1] == G32.layer_names and names[-1] == "b32"


# --- sampling the resized features --------------------------------------------------------------
def test_resized_at_reads_the_interpolated_map():
    feat = torch.randn(1, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    size = (12, 9)
    full = F.interpolate(feat, size=size, mode="bilinear", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(12), torch.arange(9), indexing="ij")
    got = resized_at(feat, yy.reshape(-1), xx.reshape(-1), size)
    assert torch.allclose(got, full[0].reshape(3, -1), atol=1e-6)


def test_shifted_at_is_bilinear_between_pixels_and_zero_outside():
    feat = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    size = (8, 8)
    full = F.interpolate(feat, size=size, mode="bilinear", align_corners=False)
    ys = torch.tensor([0.0, 2.5, 7.0, 7.5, -0.5, 3.25])
    xs = torch.tensor([0.0, 1.5, 7.0, 3.0, 4.0, 6.75])
    grid = torch.stack([xs / 7 * 2 - 1, ys / 7 * 2 - 1], -1).view(1, 1, -1, 2)
    want = F.grid_sample(full, grid, align_corners=True, padding_mode="zeros")[0, :, 0]
    assert torch.allclose(shifted_at(feat, ys, xs, size), want, atol=1e-6)


# --- the losses on hand-made maps ----------------------------------------------------------------
def ramp(size=16, channels=2):
    """Features equal to the x coordinate (every channel), at image size."""
    x = torch.arange(size, dtype=torch.float32).expand(size, size)
    return x.expand(1, channels, size, size).clone().requires_grad_(True)


@pytest.mark.parametrize("target, want", [((12, 8), 1.0), ((8, 12), 0.0), ((11, 12), 0.6)])
def test_motion_loss_is_the_mean_shifted_difference(target, want):
    # F(q + u) - F(q) = u_x on a ramp in x: 1 moving right, 0 moving down, 3/5 along (3, 4)
    loss = motion_loss(ramp(), [(8, 8)], [target], [True], 2.0, (16, 16))
    assert float(loss.detach()) == pytest.approx(want, abs=1e-5)


def test_motion_loss_sums_handles_skips_done_ones_and_stops_gradients_at_the_source():
    feat = ramp()
    two = motion_loss(feat, [(5, 5), (10, 10)], [(9, 5), (14, 10)], [True, True], 2.0, (16, 16))
    one = motion_loss(feat, [(5, 5), (10, 10)], [(9, 5), (14, 10)], [True, False], 2.0, (16, 16))
    assert float(two) == pytest.approx(2.0) and float(one) == pytest.approx(1.0)
    one.backward()
    # row y = 5 of the disc around (5, 5) is x = 3..7; its samples are read one pixel to the
    # right (x = 4..8), and only they carry gradient: x = 3 is read only as the stopped source
    g = feat.grad[0, 0]
    assert g[5, 3] == 0 and g[5, 9] == 0 and bool((g[5, 4:9] > 0).all())
    assert not bool(g[8:13].any())  # the done handle at (10, 10) adds nothing


def test_fixed_area_loss_is_lambda_times_the_mean_over_the_whole_image():
    feat0 = torch.zeros(1, 3, 8, 8)
    feat = torch.full((1, 3, 8, 8), 0.5)
    mask = torch.ones(8, 8)
    mask[:, :2] = 0  # a quarter of the image fixed
    loss = fixed_area_loss(feat, feat0, mask, 20.0, (8, 8))
    assert float(loss) == pytest.approx(20 * 0.5 * 0.25)


# --- trackers on hand-made feature maps --------------------------------------------------------
def planted(size=16, where=((9, 6),), value=5.0):
    feat = torch.zeros(1, 4, size, size)
    for x, y in where:
        feat[0, :, y, x] = value
    return feat


def test_paper_tracker_finds_the_planted_feature_within_r2():
    ref = torch.full((1, 4), 5.0)
    tracker = PaperTracker(ref, r2=4)
    assert tracker.track(planted(where=((9, 6),)), [(7, 7)], (16, 16)) == [(9.0, 6.0)]
    # out of reach (6 px away, r2 4): the best in the square is elsewhere
    assert tracker.track(planted(where=((13, 7),)), [(7, 7)], (16, 16)) != [(13.0, 7.0)]


def test_reference_features_read_the_rounded_points():
    feat = planted(where=((3, 4),))
    refs = reference_features(feat, [(3.2, 3.6)], (16, 16))
    assert torch.equal(refs, torch.full((1, 4), 5.0))


def patterned(centres, size=16, centre_scale=1.0):
    """Zeros with a 3x3 pattern (channel 0 = 1..9 over the patch, the others 1) around each
    of `centres`; the centre pixel's vector scaled by `centre_scale`."""
    feat = torch.zeros(1, 4, size, size)
    for x, y in centres:
        for k, (dy, dx) in enumerate((a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)):
            feat[0, :, y + dy, x + dx] = torch.tensor([k + 1.0, 1, 1, 1])
        feat[0, :, y, x] *= centre_scale
    return feat


def robust_on(feat0, point, **kw):
    refs = reference_features(feat0, [point], (16, 16))
    tracker = RobustTracker(refs, r2=4, half=1, **kw)
    tracker.start(feat0, [point], (16, 16))
    return tracker


def test_robust_tracker_holds_the_point_when_the_match_is_ambiguous():
    tracker = robust_on(patterned([(7, 7)]), (7, 7))
    # the handle's patch now appears twice, 2 px either side: no clear winner -> stay
    assert tracker.track(patterned([(5, 7), (9, 7)]), [(7, 7)], (16, 16)) == [(7.0, 7.0)]
    assert tracker.margins[0] == pytest.approx(0.0)
    assert torch.equal(tracker.templates, tracker.initial)   # back to the start's patch


def test_robust_tracker_follows_the_patch_and_can_learn_its_new_look():
    tracker = robust_on(patterned([(7, 7)]), (7, 7), rate=0.5)
    moved = patterned([(8, 8)], centre_scale=0.8)             # moved and slightly changed
    assert tracker.track(moved, [(7, 7)], (16, 16)) == [(8.0, 8.0)]
    centre = tracker.templates[0, 0, 4]                        # channel 0 at the centre
    assert 0.8 * 5 < float(centre) < 5.0 and tracker.margins[0] > 0.5
    fixed = robust_on(patterned([(7, 7)]), (7, 7))             # the default keeps the start's
    assert fixed.track(moved, [(7, 7)], (16, 16)) == [(8.0, 8.0)]
    assert torch.equal(fixed.templates, fixed.initial)


def test_robust_tracker_ignores_a_one_pixel_look_alike_the_paper_follows():
    feat0 = patterned([(7, 7)])
    refs = reference_features(feat0, [(7, 7)], (16, 16))
    now = patterned([(8, 7)], centre_scale=0.9)    # the handle moved 1 px, changed a little
    now[0, :, 7, 5] = feat0[0, :, 7, 7]            # a pixel that looks exactly like the click
    assert PaperTracker(refs, r2=4).track(now, [(7, 7)], (16, 16)) == [(5.0, 7.0)]
    assert robust_on(feat0, (7, 7)).track(now, [(7, 7)], (16, 16)) == [(8.0, 7.0)]


# --- sessions ------------------------------------------------------------------------------------
def test_w_plus_mode_changes_only_the_first_rows(G32):
    ws = start_ws(G32)
    s = DragSession(G32, ws, [(10, 12)], [(16, 12)], settings=DragSettings(n_ws=3))
    for _ in range(3):
        s.step()
    out = s.ws()
    assert torch.equal(out[:, 3:], ws[:, 3:])
    assert (out[:, :3] - ws[:, :3]).abs().amax(dim=-1).min() > 0


def test_w_mode_moves_every_row_together(G32):
    ws = start_ws(G32)
    s = DragSession(G32, ws, [(10, 12)], [(16, 12)], settings=DragSettings(space="w"))
    for _ in range(3):
        s.step()
    out = s.ws()
    assert torch.allclose(out, out[:, :1].expand_as(out), atol=0, rtol=0)
    assert not torch.equal(out, ws)


def test_dcgan_drags_z_itself():
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=8, ngf=8, img_resolution=16).eval()
    z = torch.randn(1, 8)
    ws = G.z_to_w(z)
    assert torch.equal(ws, z[:, None])          # no mapping network: the one row is z
    s = DragSession(G, ws, [(6, 8)], [(9, 8)])   # n_ws 6 > num_ws 1: the one row, z
    assert s.layer == "b8" and s.delta.shape == (1, 1, 8)
    s.step()
    s.step()
    assert not torch.equal(s.ws(), ws)


def test_a_finished_drag_takes_no_step(G32):
    s = DragSession(G32, start_ws(G32), [(10, 12)], [(10.5, 12)])  # within d from the start
    r = s.step()
    assert r["done"] and s.done and r["step"] == 0 and s.step_count == 0
    assert torch.equal(s.ws(), start_ws(G32))


def test_max_steps_ends_the_drag(G32):
    s = DragSession(G32, start_ws(G32), [(4, 4)], [(28, 28)], settings=DragSettings(max_steps=2))
    records = s.run()
    assert [r["step"] for r in records] == [0, 1, 2] and records[-1]["done"]


@pytest.mark.parametrize("tracking", ["paper", "robust"])
@pytest.mark.parametrize("space", ["w+", "w"])
def test_restored_session_takes_the_same_next_step_bit_for_bit(G32, tracking, space):
    mask = torch.ones(32, 32)
    mask[:, 26:] = 0
    settings = DragSettings(tracking=tracking, space=space, max_steps=50)
    s = DragSession(G32, start_ws(G32), [(10, 12), (16, 8)], [(14, 12), (16, 13)], mask=mask,
                    settings=settings)
    for _ in range(4):
        s.step()
    state = s.state()
    a = s.step()
    r = DragSession.from_state(G32, state)
    b = r.step()
    assert torch.equal(a["image"], b["image"])
    assert a["points"] == b["points"] and a["loss"] == b["loss"] and a["step"] == b["step"]
    assert torch.equal(s.ws(), r.ws())
    assert torch.equal(s.step()["image"], r.step()["image"])  # and the one after


def test_restore_refuses_another_latent_mode(G32):
    state = DragSession(G32, start_ws(G32), [(10, 12)], [(14, 12)]).state()
    with pytest.raises(ValueError, match="space"):
        DragSession.from_state(G32, state, DragSettings(space="w"))
    with pytest.raises(ValueError, match="drag session state"):
        DragSession.from_state(G32, {"version": 99})


@pytest.mark.parametrize("tracking", ["paper", "robust"])
def test_set_points_keeps_a_tracked_handle_and_references_a_new_one(G32, tracking):
    s = DragSession(G32, start_ws(G32), [(10, 12)], [(16, 12)],
                    settings=DragSettings(tracking=tracking))
    for _ in range(3):
        s.step()
    old_ref = s.tracker.refs[0].clone()
    s.set_points([s.points[0], (20, 20)], [(16, 12), (24, 20)])
    assert torch.equal(s.tracker.refs[0], old_ref)
    with torch.no_grad():
        _, feats = G32.synthesize_with_features(s.ws())
    want = reference_features(feats[G32.layer_names.index(s.layer)], [(20, 20)], (32, 32))[0]
    assert torch.allclose(s.tracker.refs[1], want)
    assert not s.done and s.step()["points"][1] == (20.0, 20.0)
    if tracking == "robust":  # the kept handle keeps its patch template too
        assert s.tracker.initial.shape[0] == 2


@pytest.mark.parametrize("handles, targets, mask, match", [
    ([(32, 5)], [(5, 5)], None, "outside the 32x32 image"),
    ([(5, 5)], [(5, -1)], None, "target 1 .* outside"),
    ([(5, 5)], [(5, 9), (1, 1)], None, "1 handles but 2 targets"),
    ([], [], None, "at least one"),
    ([(5, 5)], [(9, 5)], torch.ones(16, 16), "mask must be 32x32"),
    ([(5, 5)], [(9, 5)], torch.zeros(32, 32), "handle 1 .* fixed area"),
    ([(float("nan"), 5)], [(9, 5)], None, "outside"),
    ([("a", 5)], [(9, 5)], None, "must be an \\(x, y\\) pair"),
])
def test_bad_points_and_masks_are_one_clear_error(G32, handles, targets, mask, match):
    with pytest.raises(ValueError, match=match):
        DragSession(G32, start_ws(G32), handles, targets, mask=mask)


@pytest.mark.parametrize("settings, match", [
    (DragSettings(space="z"), "unknown space"), (DragSettings(tracking="kcf"), "unknown tracking"),
    (DragSettings(lr=0), "lr must be"), (DragSettings(layer="b5"), "unknown layer 'b5'"),
    (DragSettings(n_ws=0), "n_ws"), (DragSettings(lambda_mask=-1), "lambda"),
])
def test_bad_settings_are_one_clear_error(G32, settings, match):
    with pytest.raises(ValueError, match=match):
        DragSession(G32, start_ws(G32), [(5, 5)], [(9, 5)], settings=settings)


def test_the_fixed_area_barely_changes(G32):
    """A drag on the left half with the right half fixed changes the right half's pixels far
    less than the same drag without the mask."""
    mask = torch.ones(32, 32)
    mask[:, 16:] = 0
    changes = {}
    for name, m in (("free", None), ("fixed", mask)):
        s = DragSession(G32, start_ws(G32), [(8, 16)], [(14, 16)], mask=m,
                        settings=DragSettings(lr=0.01, max_steps=8))
        start = s.image()
        s.run()
        changes[name] = float((s.image() - start)[..., 18:].abs().mean())
    assert changes["fixed"] < 0.3 * changes["free"]


# --- a real drag ----------------------------------------------------------------------------------
def locate(start, final, handle, radius=3, search=8):
    """Where the patch of `start` around `handle` lies in `final` (least squares)."""
    x, y = handle
    patch = start[..., y - radius:y + radius + 1, x - radius:x + radius + 1]
    best = None
    for yy in range(y - search, y + search + 1):
        for xx in range(x - search, x + search + 1):
            window = final[..., yy - radius:yy + radius + 1, xx - radius:xx + radius + 1]
            err = float(((window - patch) ** 2).sum())
            if best is None or err < best[0]:
                best = (err, xx, yy)
    return best[1], best[2]


@pytest.fixture(scope="module")
def digiface():
    from ganprior.checkpoints import load_generator
    return load_generator("stylegan2-digiface64")


def test_a_handle_moves_to_its_target_on_the_embedded_model(digiface):
    G = digiface
    ws = G.z_to_w(G.z_from_seed(3), truncation_psi=0.7).detach()
    handle, target = (24, 22), (24, 19)    # an eyebrow, 3 px up
    s = DragSession(G, ws, [handle], [target], settings=DragSettings(max_steps=80))
    start = s.image()
    records = s.run()
    assert records[-1]["done"] and records[-1]["distances"][0] <= s.radii["d"]
    # the content itself went there (not only the tracker's estimate)
    x, y = locate(start, records[-1]["image"], handle)
    assert math.hypot(x - target[0], y - target[1]) <= 1.5    # from 3 px away


# --- pictures ---------------------------------------------------------------------------------
def test_render_points_marks_handles_red_and_targets_blue():
    image = torch.zeros(1, 3, 16, 16)
    pic = render_points(image, [(2, 3)], [(12, 10)], scale=8)
    assert pic.size == (128, 128)
    assert pic.getpixel((2 * 8 + 4, 3 * 8 + 4)) == (230, 40, 40)
    assert pic.getpixel((12 * 8 + 4, 10 * 8 + 4)) == (40, 90, 230)
    assert pic.getpixel((120, 4)) == (128, 128, 128)  # untouched: gray of 0.0


def test_animation_and_before_after(tmp_path):
    from PIL import Image
    records = [{"image": torch.full((1, 3, 8, 8), v), "points": [(1, 1 + i)], "targets": [(6, 6)]}
               for i, v in enumerate((-1.0, 0.0, 1.0))]
    frames = animation_frames(records, max_frames=2)
    assert len(frames) == 2
    path = write_animation(tmp_path / "drag.gif", animation_frames(records))
    with Image.open(path) as im:
        assert im.n_frames == 3
    assert before_after(records, scale=4).size == (8 * 4 * 2 + 4, 32)
    with pytest.raises(ValueError, match="gif or .webp"):
        write_animation(tmp_path / "drag.png", frames)


# --- the cropped features the gradient comes from ------------------------------------------------
@pytest.mark.parametrize("arch", ["skip", "resnet"])
def test_features_in_box_equal_the_full_maps_cut(arch):
    G = small_stylegan2(res=32, arch=arch)
    ws = start_ws(G)
    with torch.no_grad():
        _, feats = G.synthesize_with_features(ws)
        for f in feats:
            r = f.shape[-1]
            for box in [(0, r, 0, r), (0, 1, r - 1, r), (r // 2, r // 2 + 2, 1, 3)]:
                got = G.features_in_box(f"b{r}", ws, box)
                assert torch.allclose(got, f[:, :, box[0]:box[1], box[2]:box[3]], atol=1e-5)


def test_the_cropped_motion_loss_has_the_full_maps_gradient(G32):
    from ganprior.editing.drag import loss_box
    G = small_stylegan2(res=32).requires_grad_(False)
    ws = start_ws(G).requires_grad_(True)
    points, targets, on = [(0, 1), (30, 20)], [(3, 4), (27, 24)], [True, True]
    full = G.features_at("b16", ws)[:, :G.synthesis.b16.conv1.weight.shape[0]]
    want, = torch.autograd.grad(motion_loss(full, points, targets, on, 2.0, (32, 32)), [ws])
    box = loss_box(points, on, 2.0, (32, 32), (16, 16))
    crop = G.features_in_box("b16", ws, box)
    assert crop.shape[-2:] != (16, 16)                      # a real crop
    got, = torch.autograd.grad(motion_loss(crop, points, targets, on, 2.0, (32, 32),
                                           origin=(box[0], box[2]), full=(16, 16)), [ws])
    assert torch.allclose(got, want, atol=1e-6 * float(want.abs().max()))


def test_dcgan_features_in_box_fall_back_to_the_whole_map():
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=8, ngf=8, img_resolution=16).eval()
    ws = G.z_to_w(torch.randn(1, 8))
    with torch.no_grad():
        want = G.features_at("b8", ws)[:, :, 2:5, 1:4]
        assert torch.equal(G.features_in_box("b8", ws, (2, 5, 1, 4)), want)


def test_drag_pictures_writes_the_demo_pair_and_gif(G32, tmp_path):
    from PIL import Image

    from ganprior.editing.drag import drag_pictures
    out = drag_pictures(G32, start_ws(G32), [(10, 12)], [(14, 12)], tmp_path,
                        settings=DragSettings(max_steps=3))
    assert out["steps"] == 3 and out["initial"] == pytest.approx(4.0)
    with Image.open(out["animation"]) as gif:
        assert gif.n_frames == 4
    assert Image.open(out["before_after"]).width > 2 * 32

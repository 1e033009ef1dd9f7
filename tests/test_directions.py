"""Semantic directions: SeFa against a numpy eigen-decomposition, InterFaceGAN on separable
synthetic scores, conditional projection, apply_direction on every method's parameters,
direction files, and the pixel attributes on hand-made images."""
import json

import numpy as np
import pytest
import torch
from conftest import small_stylegan2

from ganprior.editing.attributes import asymmetry, brightness, contrast, warmth
from ganprior.editing.directions import (Direction, apply_direction, boundary_direction,
                                         conditional, load_direction, save_direction, sefa,
                                         train_boundary)
from ganprior.inversion.methods import make_method
from ganprior.nets.dcgan import DCGANGenerator


@pytest.fixture(scope="module")
def G():
    return small_stylegan2(res=16)


def numpy_sefa(G, layers=None):
    """SeFa by hand: stack [features, w_dim] weights, unit rows, eigenvectors of A^T A by
    decreasing eigenvalue."""
    rows = [s.weight.detach().double().numpy() for s in G.modulation_weights()
            if layers is None or s.ws_index in layers]
    A = np.concatenate(rows)
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(A.T @ A)
    order = np.argsort(-values)
    return values[order], vectors[:, order], A


def test_sefa_is_the_eigen_decomposition_of_the_normalised_weights(G):
    dirs = sefa(G, k=G.w_dim)
    V = torch.stack([d.vector for d in dirs]).double().numpy()
    np.testing.assert_allclose(V @ V.T, np.eye(G.w_dim), atol=1e-6)  # orthonormal
    values, vectors, A = numpy_sefa(G)
    for i in range(6):  # the top eigenvalues are distinct, so each vector is unique up to sign
        assert abs(V[i] @ vectors[:, i]) > 1 - 1e-6
        assert dirs[i].meta["eigenvalue"] == pytest.approx(values[i], rel=1e-9)
        assert np.linalg.norm(A @ V[i]) ** 2 == pytest.approx(values[i], rel=1e-6)  # float32 vector
    assert [d.space for d in dirs[:2]] == ["w", "w"] and dirs[0].layers is None


def test_sefa_on_a_layer_range_uses_only_those_styles_and_moves_only_them(G):
    dirs = sefa(G, k=3, layers=[0, 1])
    _, vectors, _ = numpy_sefa(G, layers={0, 1})
    for i, d in enumerate(dirs):
        assert abs(d.vector.double().numpy() @ vectors[:, i]) > 1 - 1e-6
        assert d.layers == [0, 1]
    ws = torch.zeros(1, G.num_ws, G.w_dim)
    moved = apply_direction("w+", {"w": ws}, dirs[0], 2.0)["w"]
    torch.testing.assert_close(moved[0, :2], 2.0 * dirs[0].vector.expand(2, -1))
    assert moved[0, 2:].abs().max() == 0


def test_sefa_on_a_dcgan_factorises_the_first_layer():
    torch.manual_seed(0)
    D = DCGANGenerator(z_dim=8, ngf=4, img_resolution=8).eval()
    w = D.main[0].weight.detach().double().numpy()  # [z_dim, C, 4, 4]
    A = w.reshape(8, -1).T
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(A.T @ A)
    dirs = sefa(D, k=3)
    for i, d in enumerate(dirs):
        assert abs(d.vector.double().numpy() @ vectors[:, -1 - i]) > 1 - 1e-6
    assert dirs[0].space == "z" and dirs[0].w_is_z


@pytest.mark.parametrize("method", ["svm", "logistic"])
def test_interfacegan_recovers_a_separable_direction(method):
    rng = np.random.RandomState(0)
    X = rng.randn(4000, 16)
    v = rng.randn(16)
    v /= np.linalg.norm(v)
    normal, accuracy = train_boundary(X, X @ v, method=method, ratio=0.25)
    assert normal @ v > 0.99 and np.linalg.norm(normal) == pytest.approx(1)
    assert accuracy == 1.0
    order = np.argsort(X @ v)
    top, bottom = X[order[-1000:]], X[order[:1000]]  # the chosen positives and negatives
    assert (top @ normal).min() > (bottom @ normal).max()


def test_interfacegan_defaults_and_refusals():
    rng = np.random.RandomState(1)
    X = rng.randn(5000, 8)
    normal, accuracy = train_boundary(X, X[:, 3])  # InterFaceGAN's ratio 0.02: 100 + 100
    assert abs(normal[3]) > 0.95 and normal[3] > 0 and accuracy > 0.95
    with pytest.raises(ValueError, match="too few"):
        train_boundary(X[:50], X[:50, 0])
    with pytest.raises(ValueError, match="one score per row"):
        train_boundary(X, X[:-1, 0])
    with pytest.raises(ValueError, match="do not vary"):
        train_boundary(X, np.ones(5000), ratio=0.1)


def _unit(v):
    v = torch.as_tensor(v, dtype=torch.float64)
    return Direction(v / v.norm(), "w")


def test_conditional_direction_is_orthogonal_to_the_conditions():
    g = torch.Generator().manual_seed(0)
    p, c1, c2 = (torch.randn(12, generator=g, dtype=torch.float64) for _ in range(3))
    c2 = c2 + 0.5 * c1  # correlated conditions, as InterFaceGAN's attributes are
    primal, a, b = _unit(p + c1), _unit(c1), _unit(c2)
    one = conditional(primal, [a])
    expected = primal.vector - (primal.vector @ a.vector) * a.vector
    torch.testing.assert_close(one.vector, expected / expected.norm())
    two = conditional(primal, [a, b])
    assert abs(float(two.vector @ a.vector)) < 1e-12 and abs(float(two.vector @ b.vector)) < 1e-12
    assert float(two.vector.norm()) == pytest.approx(1) and float(two.vector @ primal.vector) > 0.3
    # InterFaceGAN's closed form for two conditions
    pa, pb, ab = (float(primal.vector @ a.vector), float(primal.vector @ b.vector),
                  float(a.vector @ b.vector))
    alpha, beta = (pa - pb * ab) / (1 - ab ** 2), (pb - pa * ab) / (1 - ab ** 2)
    closed = primal.vector - alpha * a.vector - beta * b.vector
    torch.testing.assert_close(two.vector, closed / closed.norm())
    with pytest.raises(ValueError, match="span"):
        conditional(a, [a])


def test_apply_direction_moves_w_plus_and_mganprior_codes_by_strength_times_d(G):
    g = torch.Generator().manual_seed(0)
    d = Direction(torch.nn.functional.normalize(torch.randn(G.w_dim, generator=g), dim=0), "w",
                  G.num_ws)
    ws = torch.randn(2, G.num_ws, G.w_dim, generator=g)
    moved = apply_direction("w+", {"w": ws}, d, -2.5)["w"]
    torch.testing.assert_close(moved - ws, -2.5 * d.vector.expand_as(ws), rtol=0, atol=1e-6)
    plus = Direction(torch.nn.functional.normalize(torch.randn(G.num_ws * G.w_dim, generator=g),
                                                   dim=0).reshape(G.num_ws, G.w_dim), "w+",
                     G.num_ws)
    torch.testing.assert_close(apply_direction("padinv", {"w": ws, "const": ws}, plus, 3.0)["w"]
                               - ws, 3.0 * plus.vector.expand_as(ws), rtol=0, atol=1e-6)
    method = make_method("mganprior", codes=3, layer="b8")
    params = method.init(G, torch.zeros(2, 3, 16, 16), [torch.Generator().manual_seed(i)
                                                         for i in range(2)])
    out = apply_direction("mganprior", params, d, 1.5)
    torch.testing.assert_close(out["codes"] - params["codes"],
                               1.5 * d.vector.expand_as(params["codes"]), rtol=0, atol=1e-6)
    torch.testing.assert_close(out["ws_tail"] - params["ws_tail"],
                               1.5 * d.vector.expand_as(params["ws_tail"]), rtol=0, atol=1e-6)
    assert torch.equal(out["alpha"], params["alpha"])
    assert method.render(G, out).shape == (2, 3, 16, 16)
    single = apply_direction("w", {"w": ws[:, :1]}, plus, 1.0)["w"]  # w becomes W+
    torch.testing.assert_close(single - ws[:, :1], plus.vector.expand(2, -1, -1))
    with pytest.raises(ValueError, match="z-space direction"):
        apply_direction("w+", {"w": ws}, Direction(torch.ones(G.w_dim) / G.w_dim ** .5, "z"), 1)
    with pytest.raises(ValueError, match="cannot move a z latent"):
        apply_direction("z", {"z": torch.zeros(1, G.z_dim)}, d, 1.0)


def test_apply_direction_on_a_dcgan_moves_z_and_every_code():
    D = DCGANGenerator(z_dim=8, ngf=4, img_resolution=8).eval()
    d = sefa(D, k=1)[0]
    z = torch.randn(3, 8)
    torch.testing.assert_close(apply_direction("z", {"z": z}, d, 2.0)["z"], z + 2.0 * d.vector)
    codes, alpha = torch.randn(3, 4, 1, 8), torch.rand(3, 4, 16)
    out = apply_direction("mganprior", {"codes": codes, "alpha": alpha}, d, -1.0)
    torch.testing.assert_close(out["codes"], codes - d.vector)
    assert out["alpha"] is alpha


def test_direction_files_round_trip_and_refuse_another_model(G, tmp_path):
    d = sefa(G, k=1)[0]
    save_direction(tmp_path / "top", d, G, attribute="pose?")
    back = load_direction(tmp_path / "top.json", G)
    torch.testing.assert_close(back.vector, d.vector.float())
    meta = json.loads((tmp_path / "top.json").read_text())
    assert meta["space"] == "w" and meta["method"] == "sefa" and meta["attribute"] == "pose?"
    with pytest.raises(ValueError, match="another model"):
        load_direction(tmp_path / "top", small_stylegan2(res=16, seed=1))
    with pytest.raises(ValueError, match="is in w, not w\\+"):
        load_direction(tmp_path / "top", G, space="w+")
    (tmp_path / "top.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_direction(tmp_path / "top", G)
    normal = np.zeros(G.num_ws * G.w_dim)
    normal[5] = 2.0
    plus = boundary_direction(G, normal, "w+", {"accuracy": 1.0})
    assert plus.vector.shape == (G.num_ws, G.w_dim) and plus.vector[0, 5] == 1.0


def image(rgb_rows):
    """[1, 3, H, W] in [-1, 1] from an [H, W, 3] array in [0, 1]."""
    x = torch.as_tensor(np.asarray(rgb_rows, dtype=np.float32)).permute(2, 0, 1)[None]
    return x * 2 - 1


def test_attributes_on_hand_made_images():
    half = np.zeros((16, 16, 3))
    half[:, :8] = 1  # left half white
    assert brightness(image(half)).item() == pytest.approx(0.5)
    assert asymmetry(image(half)).item() == pytest.approx(1.0)
    assert asymmetry(image(half[:, ::-1])).item() == pytest.approx(-1.0)
    assert contrast(image(half)).item() == pytest.approx(0.0, abs=1e-7)
    box = np.zeros((16, 16, 3))
    box[4:12, 4:12] = 1  # the centre box is rows/cols 4..11 of 16
    assert contrast(image(box)).item() == pytest.approx(1.0)
    assert brightness(image(box)).item() == pytest.approx(64 / 256)
    red = np.zeros((4, 4, 3))
    red[..., 0] = 1
    assert warmth(image(red)).item() == pytest.approx(1.0)
    assert brightness(image(red)).item() == pytest.approx(0.299)
    blue = red[..., ::-1]
    assert warmth(image(blue)).item() == pytest.approx(-1.0)
    odd = np.zeros((3, 5, 3))
    odd[:, :2] = 1
    odd[:, 2] = 0.7  # the middle column of an odd width counts for neither half
    assert asymmetry(image(odd)).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="RGB"):
        brightness(torch.zeros(1, 1, 4, 4))

"""Thickness (06d_thickness): the layer count of drawn flakes of known attenuation, over a hole and on film."""
import numpy as np
import pytest
from skimage.draw import disk

from accords_tem.thickness import flake_layers

@pytest.mark.parametrize('n,mu', [(1, 0.07), (3, 0.05), (8, 0.035)])
def test_drawn_flake_layers(n, mu):
    H = W = 240
    cm = np.full((H, W), 3, np.uint8); cm[:, :120] = 2                  # left: hole, right: film (transmission 0.7)
    lab = np.zeros((H, W), np.int32)
    rr, cc = disk((70, 60), 40, shape=lab.shape); lab[rr, cc] = 1       # over the hole
    rr, cc = disk((170, 180), 40, shape=lab.shape); lab[rr, cc] = 2     # on film
    I = 2000 * np.where(cm == 2, 1.0, 0.7) * np.exp(-mu * n * (lab > 0))
    img = np.random.default_rng(n).poisson(I) + 50
    t = flake_layers(img, lab, np.where(lab > 0, 1, cm), mu=mu, dark=50)
    assert list(t.reference) == ['vacuum', 'film']
    assert t.layers.to_numpy() == pytest.approx([n, n], abs=0.35)
    assert t.thickness_nm[0] == pytest.approx(n * 0.335, abs=0.15)

def test_folded_overlapping_flake_layers():
    "A 3-layer flake folded over 60 % of itself, wrinkled and lying over a 4-layer neighbour: its sheet, not the sum."
    H, W, mu, dark = 260, 320, 0.05, 100.0
    cm = np.full((H, W), 2, np.uint8)                                        # one big hole (vacuum)
    lab = np.zeros((H, W), np.int32); lay = np.zeros((H, W))
    rr, cc = disk((130, 220), 60, shape=lab.shape); lab[rr, cc] = 2; lay[rr, cc] = 4      # neighbour, below
    rr, cc = disk((130, 120), 85, shape=lab.shape); lab[rr, cc] = 1; lay[rr, cc] += 3     # on top (the instance map shows it)
    one = lab == 1
    lay[one & (np.arange(W)[None] > 100)] += 3                               # folded back over 60 % of itself
    lay[one & (np.arange(H)[:, None] % 12 < 2)] += 6                         # wrinkles
    assert np.median(lay[one]) >= 6                                          # a median would say 6 or more
    img = np.random.default_rng(1).poisson(1000 * np.exp(-mu * lay)) + dark
    t = flake_layers(img, lab, np.where(lab > 0, 1, cm), mu=mu, dark=dark)
    assert t.layers.to_numpy() == pytest.approx([3, 4], abs=0.4)
    assert bool(t.heterogeneous[0]) and not bool(t.heterogeneous[1])
    assert 0.15 < t.sheet_share[0] < 0.5 < t.sheet_share[1]

def test_flat_field_recovers_the_beam():
    from accords_tem.thickness import flat_field
    H, W = 120, 160
    cm = np.full((H, W), 3, np.uint8); cm[:, :60] = 2
    x, y = np.arange(W) / W - 0.5, np.arange(H) / H - 0.5
    g = (1 - 0.1 * x)[None] * (1 - 0.08 * (x[None] ** 2 + y[:, None] ** 2))
    img = 800 * np.where(cm == 2, 1.0, 0.65) * g
    ff = flat_field(img, np.zeros((H, W), np.int32), cm, step=2)
    assert np.allclose(ff / ff.mean(), g / g.mean(), atol=2e-3)

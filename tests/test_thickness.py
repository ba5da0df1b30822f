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

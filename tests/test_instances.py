"Known answers for object separation: centre-map decoding (U-Net instance classes) and mask cutting at necks (masks without a model)."
import numpy as np
import pytest
from skimage.draw import disk, ellipse

from accords_tem.instances import centre_map, centre_target, instances_from_centres, merge_wide_necks, relabel_sequential
from accords_tem.sam import instances_from_mask

def two_disks(dx:float, r:float=12, gap_px:int=0) -> np.ndarray:
    "Instance labels of two disks whose centres are `dx` apart; `gap_px` columns erased between them."
    lab = np.zeros((48, 96), np.int32)
    lab[disk((24, 30), r, shape=lab.shape)] = 1; lab[disk((24, 30 + dx), r, shape=lab.shape)] = 2
    if gap_px: lab[:, int(30 + dx / 2):int(30 + dx / 2) + gap_px] = 0
    return lab

def dumbbell() -> np.ndarray:
    m = np.zeros((48, 110), bool)
    m[disk((24, 25), 14, shape=m.shape)] = True; m[disk((24, 85), 14, shape=m.shape)] = True; m[22:27, 25:85] = True
    return m

def cut(mask, split='auto'): return instances_from_mask(mask, split=split, h=2.0, min_area=10, speck_px=0, hole_px=0)

@pytest.mark.parametrize('mask, n, what', [
    (two_disks(23) > 0, 2, 'two touching disks'),
    (two_disks(30, gap_px=1) > 0, 2, 'an already-separated pair'),
    (dumbbell(), 2, 'a dumbbell: two disks joined by a thin bar'),
    (two_disks(8) > 0, 1, 'two disks overlapping by most of their radius: one object'),
])
def test_mask_cut_at_necks(mask, n, what):
    assert cut(mask).max() == n, what

def test_one_irregular_object_is_not_split():
    m = np.zeros((60, 120), bool); m[ellipse(30, 60, 14, 50, shape=m.shape)] = True
    m[ellipse(20, 40, 12, 16, shape=m.shape)] = True   # a bulge: h-maxima give two markers, the neck is wide
    assert cut(m, split=True).max() >= 1 and cut(m).max() == 1

def test_no_split_keeps_components():
    assert cut(two_disks(23) > 0, split=False).max() == 1 and cut(two_disks(30, gap_px=1) > 0, split=False).max() == 2

@pytest.mark.parametrize('lab', [two_disks(23), two_disks(30, gap_px=1), two_disks(100)])
def test_centre_maps_give_back_the_instances(lab):
    "Decoding the exact centre maps of true instances returns them (each true object one predicted object, same pixels)."
    got = instances_from_centres(lab > 0, centre_map(lab))
    assert got.max() == lab.max()
    for k in range(1, lab.max() + 1): assert len(np.unique(got[lab == k])) == 1

def test_centre_target_ignores_unlabelled_pixels():
    ct = (two_disks(23) > 0).astype(np.int8); ct[:2] = -1
    t = centre_target(ct, two_disks(23))
    assert (t[:2] == -1).all() and t.max() == 100 and t[ct == 0].max() == 0

def test_merge_wide_necks_and_relabel():
    assert relabel_sequential(np.array([[0, 7, 7, 3]])).tolist() == [[0, 2, 2, 1]]   # in the order of the old labels
    m = two_disks(8) > 0
    from scipy import ndimage as ndi
    d = ndi.distance_transform_edt(m); halves = np.where(m, 1 + (np.arange(96)[None] >= 34), 0)
    assert merge_wide_necks(halves, d).max() == 1   # cut through its widest part: no neck, one object

"""Bounded memory on large images (issue 18 item 8): the banded / lazy paths give the whole-image answers.
The peak-RSS figures themselves come from bench/bench_memory.py (one big TIFF through every stage)."""
import subprocess, sys
from pathlib import Path

import numpy as np
import pytest

from accords_tem.core import load_config, config_to_yaml
from accords_tem.io import IOConfig, inventory_row, write_tem_tiff

ROOT = Path(__file__).resolve().parents[1]


def test_config_yaml_without_stage_imports():
    "Writing a run's config.yaml (every stage's first command) imports no torch: 0.9 GB of the inventory's peak was that."
    code = ("import sys; from accords_tem.core import load_config, config_to_yaml; "
            "t = config_to_yaml(load_config('default', {'data.root': '/tmp', 'io.thumbnails': 3})); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.stdout.write(t)")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    import accords_tem.unet, accords_tem.classifier, accords_tem.objects   # noqa: F401  (now the models themselves answer)
    assert r.stdout == config_to_yaml(load_config('default', {'data.root': '/tmp', 'io.thumbnails': 3}))


def test_config_yaml_with_changed_sections():
    "A section that differs from its defaults still goes through its model (coercions, validators)."
    cfg = load_config('default', {'postprocessing.size': 64, 'unet.epochs': 3})
    d = cfg.to_dict()
    assert d['postprocessing']['size'] == [64, 64] and d['unet']['epochs'] == 3


@pytest.mark.parametrize('fmt', ['tif', 'png'])
def test_inventory_row_bands(tmp_path, fmt):
    "Statistics in bands of rows (any image larger than one band) equal the whole-image statistics."
    img = np.random.default_rng(0).integers(0, 4000, (90, 70)).astype(np.uint16)
    p = tmp_path/'GO_01'/f'AC_UT_GO_01_01_UO_2000X_0001.{fmt}'
    if fmt == 'tif': write_tem_tiff(p, img)
    else:
        import cv2; p.parent.mkdir(parents=True); cv2.imwrite(str(p), img)
    whole = inventory_row(p, tmp_path, io_cfg=IOConfig(data_bar='none'))
    banded = inventory_row(p, tmp_path, io_cfg=IOConfig(data_bar='none', max_pixels_in_memory=700))   # bands of 2 rows
    for k in ('mean', 'std'): assert banded.pop(k) == pytest.approx(whole.pop(k), abs=1e-3)
    assert banded == whole

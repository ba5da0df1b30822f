"""Synthetic micrographs: determinism, shapes and dtypes, ground-truth consistency, ilastik exports, sheets,
and the committed data_sample/ (layout, size, vocabularies, reproducible from the code)."""
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from accords_tem.core import AccordsError, ConfigError, load_config
from accords_tem.io import parse_magnification, read_ilastik_h5, read_pixel_size, read_tem
from accords_tem import synthetic as S

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / 'data_sample'
ALL_VALUES = set(sum(S.SHEET_VOCAB.values(), []))
TYPOS = set(S.SHEET_TYPOS.values())


@pytest.mark.parametrize('mag,nm', [(2000, 7.0), (10_000, 1.4), (100_000, 0.14)])
def test_pixel_size_from_magnification(mag, nm):
    assert S.nm_per_px(mag) == pytest.approx(nm)


def test_beer_lambert():
    assert S.transmission(0) == 1.0
    assert S.transmission(4, 0.05) == pytest.approx(np.exp(-0.2))
    assert S.transmission(1, 0.05) * S.transmission(3, 0.05) == pytest.approx(S.transmission(4, 0.05))


@pytest.mark.parametrize('material,mag,dtype', [('GO_02', 2000, 'uint8'), ('G_04', 20000, 'uint16'),
                                                ('rGO_01', 100000, 'uint8')])
def test_generate_shapes_and_consistency(material, mag, dtype):
    m = S.generate(7, 192, mag, material, dtype=dtype)
    assert m.image.shape == m.classes.shape == m.instances.shape == (192, 192)
    assert m.image.dtype == np.dtype(dtype)
    assert m.classes.dtype == np.uint8 and m.instances.dtype == np.uint16
    assert set(np.unique(m.classes)) <= {S.GFM, S.CARBONHOLE, S.UNDEFINED}
    np.testing.assert_array_equal(m.classes == S.GFM, m.instances > 0)
    ids = np.unique(m.instances[m.instances > 0])
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
    assert len(m.flakes) == len(ids)
    np.testing.assert_array_equal(m.flakes.area_px.to_numpy(), np.bincount(m.instances.ravel(), minlength=len(ids) + 1)[1:])
    r = m.record
    assert r['coverage_gfm'] + r['coverage_hole'] + r['coverage_film'] == pytest.approx(1.0)
    assert r['nm_per_px'] == pytest.approx(14000 / mag)
    for col in S.SHEET_COLUMNS: assert r[col] in S.SHEET_VOCAB[col]


def test_deterministic():
    a, b = S.generate(11, 160, 5000, 'GO_02'), S.generate(11, 160, 5000, 'GO_02')
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.instances, b.instances)
    c = S.generate(12, 160, 5000, 'GO_02')
    assert not np.array_equal(a.image, c.image)


def test_exports_from_ground_truth():
    m = S.generate(5, 192, 15000, 'GO_02')
    rng = np.random.default_rng(0)
    p = S.fake_probabilities(m, rng)
    assert p.dtype == np.float32 and p.shape == (192, 192, 3)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(p * 255, np.round(p * 255), atol=1e-3)
    assert 0.8 < (p.argmax(-1) + 1 == m.classes).mean() < 1.0
    lab = S.fake_labels(m.classes, rng)
    assert lab.dtype == np.uint8 and lab.min() >= 0 and lab.max() <= 3
    np.testing.assert_array_equal(lab[lab > 0], m.classes[lab > 0])
    assert 0.02 < (lab == 0).mean() < 0.5


def test_folded_square_doubles_layers():
    sc = S.Scene(size=64, magnification=50000, nm_per_px=0.28, material='GO_02', support='holey', target='One',
                 holes=[(32, 32, 1000.0, np.zeros((0, 3)))])
    sq = np.array([[16, 16], [48, 16], [48, 48], [16, 48]], float)
    sc.flakes = [S.Flake(verts=sq, layers=2, radius=16, fold=(1.0, 0.0, 32.0))]
    r = S.render_scene(sc, np.random.default_rng(0))
    assert (r['layers'][20:44, 18:31] == 4).all() and (r['layers'][:, 34:] == 0).all()


def _default_section() -> S.SyntheticConfig:
    "The synthetic: section of configs/default.yaml (read without importing the other stages)."
    return S.SyntheticConfig(**yaml.safe_load((ROOT / 'configs' / 'default.yaml').read_text())['synthetic'])


@pytest.fixture
def small_config(tmp_path):
    "A configuration file with only the synthetic section (loading it imports no other stage)."
    p = tmp_path / 'cfg.yaml'
    p.write_text('seed: 1\nsynthetic:\n  materials: [G_04]\n  images_per_material: 1\n  size: 64\n')
    return p


def test_config_section_and_bad_keys(small_config):
    scfg = _default_section()
    assert scfg.materials == ['GO_02', 'G_04', 'rGO_01'] and scfg.size == 640
    assert load_config(small_config).section('synthetic').size == 64
    with pytest.raises(ConfigError, match='synthetic.sizes'):
        load_config(small_config, {'synthetic.sizes': 3})


def test_synthesize_small(tmp_path):
    scfg = S.SyntheticConfig(materials=['GO_02', 'G_04'], images_per_material=2, size=96, magnifications=[3000, 30000],
                             uncalibrated=1, xlsm_material='G_04')
    sc = S.synthesize(tmp_path, scfg, seed=0, progress=False)
    assert len(sc) == 4 and set(sc.prob_axes) == {'yxc', 'cyx'}
    for r in sc.itertuples():
        assert read_tem(tmp_path / r.file).shape == (96, 96)
        p = read_ilastik_h5(tmp_path / 'ilastik' / f'{r.stem}_Probabilities.h5', axes='yxc')
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)
    (tmp_path / 'extra').mkdir()
    (tmp_path / 'extra' / 'x.tif').write_bytes(b'x')
    (tmp_path / 'ground_truth' / 'scenes.csv').unlink()
    with pytest.raises(AccordsError, match='no real data is overwritten'):
        S.synthesize(tmp_path, scfg, seed=0, progress=False)


def test_cli(tmp_path, small_config):
    out = tmp_path / 'sample'
    rc = S.synthesize_main(['--config', str(small_config), '--out', str(out), '--size', '64',
                            '--set', 'synthetic.materials=[G_04, GO_02]'])
    assert rc == 0
    assert (out / 'G_04' / 'G_04_labels.xlsm').exists() and (out / 'README.md').exists()
    assert read_tem(out / 'GO_02' / 'AC_UT_GO_02_02_UO_2000X_0001.tif').shape == (64, 64)


# ---------------------------------------------------------------- the committed sample
needs_sample = pytest.mark.skipif(not (SAMPLE / 'ground_truth' / 'scenes.csv').exists(), reason='no data_sample/')


@pytest.fixture(scope='module')
def scenes():
    return pd.read_csv(SAMPLE / 'ground_truth' / 'scenes.csv', keep_default_na=False)


def _sheet(material):
    p = next((SAMPLE / material).glob(f'{material}_labels.*'))
    if p.suffix == '.csv': return p, pd.read_csv(p, sep=None, engine='python', dtype=str, keep_default_na=False)
    return p, pd.read_excel(p, dtype=str, keep_default_na=False)


@needs_sample
def test_sample_layout_and_size(scenes):
    size_mb = sum(p.stat().st_size for p in SAMPLE.rglob('*') if p.is_file()) / 2**20
    assert size_mb < 25, size_mb
    assert (SAMPLE / 'README.md').exists()
    assert 20 <= len(scenes) <= 40 and scenes.material.nunique() >= 3
    for r in scenes.itertuples():
        assert (SAMPLE / r.file).exists()
        assert parse_magnification(r.filename) == r.magnification
        for suffix in ('_Probabilities.h5', '_Labels.h5'): assert (SAMPLE / 'ilastik' / f'{r.stem}{suffix}').exists()
        for suffix in ('_classes.png', '_instances.png'): assert (SAMPLE / 'ground_truth' / f'{r.stem}{suffix}').exists()
    assert scenes.magnification.min() <= 2000 and scenes.magnification.max() >= 100000
    assert set(scenes.dtype) == {'uint8', 'uint16'}
    assert (scenes.calibrated.astype(str) == 'False').sum() >= 1
    assert (scenes.prob_axes != 'yxc').sum() == 1
    sheets = {p.suffix for m in scenes.material.unique() for p in (SAMPLE / m).glob('*_labels.*')}
    assert sheets == {'.csv', '.xlsm'}


@needs_sample
def test_sample_sheets(scenes):
    rows, missing, extra = 0, 0, 0
    delims = set()
    for mat in scenes.material.unique():
        p, df = _sheet(mat)
        assert list(df.columns) == ['filename'] + S.SHEET_COLUMNS
        for col in S.SHEET_COLUMNS:
            bad = set(df[col]) - set(S.SHEET_VOCAB[col]) - TYPOS - {''}
            assert not bad, (p, col, bad)
        files = set(scenes.loc[scenes.material == mat, 'filename'])
        missing += len(files - set(df.filename)); extra += len(set(df.filename) - files)
        rows += len(df)
        if p.suffix == '.csv': delims.add(';' if ';' in p.read_text().splitlines()[0] else ',')
        else: assert b'macroEnabled' in zipfile.ZipFile(p).read('[Content_Types].xml')
    assert missing == 1 and extra == 1
    assert delims == {',', ';'}
    typos = sum(v in TYPOS for mat in scenes.material.unique() for v in _sheet(mat)[1][S.SHEET_COLUMNS].to_numpy().ravel())
    assert typos >= 3


@needs_sample
def test_sample_ground_truth_and_exports(scenes):
    for r in scenes.iloc[::7].itertuples():
        cls = cv2.imread(str(SAMPLE / 'ground_truth' / f'{r.stem}_classes.png'), cv2.IMREAD_UNCHANGED)
        inst = cv2.imread(str(SAMPLE / 'ground_truth' / f'{r.stem}_instances.png'), cv2.IMREAD_UNCHANGED)
        assert cls.dtype == np.uint8 and inst.dtype == np.uint16
        np.testing.assert_array_equal(cls == S.GFM, inst > 0)
        lab = read_ilastik_h5(SAMPLE / 'ilastik' / f'{r.stem}_Labels.h5', axes='yx')
        np.testing.assert_array_equal(lab[lab > 0], cls[lab > 0])
        p = read_ilastik_h5(SAMPLE / 'ilastik' / f'{r.stem}_Probabilities.h5', axes='yxc')
        assert p.dtype == np.float32 and p.shape == cls.shape + (3,)
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)
        ps = read_pixel_size(SAMPLE / r.file).nm_per_px
        if str(r.calibrated) == 'True': assert ps == pytest.approx(r.nm_per_px, rel=1e-3)
        else: assert ps is None


@needs_sample
def test_sample_is_what_the_code_makes(scenes):
    "The committed sample is reproducible: regenerate two images with the default config and seed and compare."
    scfg = _default_section()
    plan = S._plan(scfg, 42)
    for i in (0, len(plan) - 1):
        p = plan.iloc[i]
        m = S.generate(np.random.default_rng([42, p.mi, p.k]), scfg.size, p.magnification, p.material, dtype=p['dtype'],
                       quality=p.quality, dose_range=scfg.dose_e_per_px, support=p.support,
                       hole_diameter_nm=scfg.hole_diameter_nm)
        np.testing.assert_array_equal(read_tem(SAMPLE / p.material / f'{p.stem}.tif'), m.image)


@needs_sample
def test_sample_layer_table(scenes):
    "ground_truth/flakes.csv holds the exact layer count of every flake: one row per id of <stem>_instances.png (issue 19)."
    fl = pd.read_csv(SAMPLE / 'ground_truth' / 'flakes.csv')
    assert {'stem', 'instance', 'layers', 'mean_layers'} <= set(fl.columns)
    for r in scenes.itertuples():
        inst = cv2.imread(str(SAMPLE / 'ground_truth' / f'{r.stem}_instances.png'), cv2.IMREAD_UNCHANGED)
        f = fl[fl.stem == r.stem].sort_values('instance')
        ids = np.unique(inst[inst > 0])
        np.testing.assert_array_equal(f.instance.to_numpy(), ids)
        np.testing.assert_array_equal(f.area_px.to_numpy(), np.bincount(inst.ravel())[ids])
    assert (fl.layers >= 1).all() and (fl.layers == fl.layers.round()).all()
    p = S._plan(_default_section(), 42).iloc[0]                                       # the table is the generator's
    m = S.generate(np.random.default_rng([42, p.mi, p.k]), _default_section().size, p.magnification, p.material, dtype=p['dtype'],
                   quality=p.quality, dose_range=_default_section().dose_e_per_px, support=p.support,
                   hole_diameter_nm=_default_section().hole_diameter_nm)
    np.testing.assert_array_equal(fl[fl.stem == p.stem].sort_values('instance').layers.to_numpy(), m.flakes.layers.to_numpy())

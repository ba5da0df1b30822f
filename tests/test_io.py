"""Tests of accords_tem.io: readers on files written in the test, metadata, magnification, ilastik HDF5, bad input."""
import json, warnings
from pathlib import Path

import h5py
import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile

from accords_tem.core import AccordsError, CalibrationConfig, FailureLog, IlastikFormatError, ImageReadError, load_config
from accords_tem.io import (LazyTiff, PixelSize, file_format, inspect_main, list_images, open_tem_lazy, parse_magnification,
                            pixel_size, read_ilastik_h5, read_metadata, read_pixel_size, read_region, read_tem,
                            run_inventory, to_float01, write_dm, write_ilastik_h5, write_tem_tiff)

RNG = np.random.default_rng(1)
IMG16 = RNG.integers(0, 60000, (37, 53), dtype=np.uint16)
IMG8 = (IMG16 // 256).astype(np.uint8)
IMGF = (IMG16 / 65535).astype(np.float32)


# ---------------------------------------------------------------- readers, every format, written here
def _tif_imagej(p, a): write_tem_tiff(p, a, nm_per_px=0.5)
def _tif_plain(p, a): tifffile.imwrite(p, a)
def _tif_tiled(p, a): tifffile.imwrite(p, a, tile=(16, 16), compression='zlib')
def _tif_rgb(p, a): tifffile.imwrite(p, np.stack([a] * 3, -1), photometric='rgb')
def _png(p, a): iio.imwrite(p, a)
def _dm3(p, a): write_dm(p, a, nm_per_px=0.5)
def _dm4(p, a): write_dm(p, a, nm_per_px=0.5)

LOSSLESS = [('imagej.tif', _tif_imagej, IMG16), ('imagej8.tif', _tif_imagej, IMG8), ('imagejf.tif', _tif_imagej, IMGF),
            ('plain.tiff', _tif_plain, IMG16), ('tiled.tif', _tif_tiled, IMG16), ('rgb.tif', _tif_rgb, IMG8),
            ('a.png', _png, IMG8), ('a16.png', _png, IMG16), ('a.dm3', _dm3, IMG16), ('a.dm4', _dm4, IMGF),
            ('b.dm4', _dm4, IMG8)]


@pytest.mark.parametrize('name,writer,img', LOSSLESS, ids=[c[0] for c in LOSSLESS])
def test_read_lossless_round_trip(tmp_path, name, writer, img):
    writer(tmp_path / name, img)
    out = read_tem(tmp_path / name)
    assert out.dtype == img.dtype and out.ndim == 2
    np.testing.assert_array_equal(out, img)


def test_read_jpeg(tmp_path):
    iio.imwrite(tmp_path / 'a.jpg', IMG8, quality=95)
    out = read_tem(tmp_path / 'a.jpg')
    assert out.shape == IMG8.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - IMG8).mean() < 25


def test_multipage_and_colour(tmp_path):
    tifffile.imwrite(tmp_path / 's.tif', np.stack([IMG16, IMG16 // 2, IMG16 // 3]), photometric='minisblack')
    np.testing.assert_array_equal(read_tem(tmp_path / 's.tif', page=1), IMG16 // 2)
    with pytest.raises(ImageReadError, match='page 3 asked for, but the TIFF has 3 page'):
        read_tem(tmp_path / 's.tif', page=3)
    c = np.zeros((4, 5, 3), np.uint8); c[..., 2] = 200
    tifffile.imwrite(tmp_path / 'c.tif', c, photometric='rgb')
    np.testing.assert_array_equal(read_tem(tmp_path / 'c.tif'), np.full((4, 5), round(0.114 * 200), np.uint8))


@pytest.mark.parametrize('kind', ['tiled', 'strips', 'plain'])
def test_region_and_lazy(tmp_path, kind):
    big = (np.arange(300 * 410) % 60013).astype(np.uint16).reshape(300, 410)
    kw = dict(tiled=dict(tile=(64, 64), compression='zlib'), strips=dict(rowsperstrip=32, compression='zlib'), plain={})[kind]
    tifffile.imwrite(tmp_path / 'b.tif', big, **kw)
    np.testing.assert_array_equal(read_region(tmp_path / 'b.tif', 70, 100, 150, 250), big[70:220, 100:350])
    np.testing.assert_array_equal(read_region(tmp_path / 'b.tif', 250, 400, 100, 100), big[250:, 400:])
    lz = open_tem_lazy(tmp_path / 'b.tif')
    assert isinstance(lz, np.memmap if kind == 'plain' else LazyTiff)
    np.testing.assert_array_equal(np.asarray(lz[5:9, 200:]), big[5:9, 200:])


def test_to_float01():
    np.testing.assert_allclose(to_float01(np.array([0, 255], np.uint8)), [0, 1])
    np.testing.assert_allclose(to_float01(np.array([0, 32768, 65535], np.uint16)), [0, 32768 / 65535, 1], rtol=1e-6)
    np.testing.assert_allclose(to_float01(np.array([0.1, 0.9], np.float32)), [0.1, 0.9])
    np.testing.assert_allclose(to_float01(np.array([-5.0, 5.0])), [0, 1])


# ---------------------------------------------------------------- bad input
def _empty(p): p.write_bytes(b'')
def _text(p): p.write_text('this is a text file, not an image\n')
def _truncated_data(p):
    tifffile.imwrite(p.with_suffix('.full'), IMG16); p.write_bytes(p.with_suffix('.full').read_bytes()[:1500])
def _truncated_header(p):
    tifffile.imwrite(p.with_suffix('.full'), IMG16); p.write_bytes(p.with_suffix('.full').read_bytes()[:60])
def _truncated_dm(p):
    write_dm(p.with_suffix('.full'), IMG16); p.write_bytes(p.with_suffix('.full').read_bytes()[:400])
def _truncated_png(p):
    iio.imwrite(p.with_suffix('.full'), IMG8, extension='.png'); p.write_bytes(p.with_suffix('.full').read_bytes()[:100])
def _html_png(p): p.write_text('<html><body>404 Not Found</body></html>')
def _unknown(p): p.write_bytes(b'BM' + bytes(100))

BAD = [('empty.tif', _empty, 'the file is empty'), ('notes.tif', _text, "not a TIFF file: it starts with b'this is '"),
       ('cut.tif', _truncated_data, 'the TIFF is truncated'), ('cuthead.tif', _truncated_header, 'cannot be read as a TIFF'),
       ('cut.dm4', _truncated_dm, 'cannot be read as a Gatan DM file'), ('cut.png', _truncated_png, 'cannot be read as a PNG'),
       ('page.png', _html_png, 'not a PNG file'), ('a.bmp', _unknown, "unknown file type '.bmp'"),
       ('missing.tif', lambda p: None, 'file not found')]


@pytest.mark.parametrize('name,make,msg', BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize('fn', [read_tem, read_pixel_size, read_metadata], ids=['read_tem', 'read_pixel_size', 'read_metadata'])
def test_bad_input_clear_error(tmp_path, name, make, msg, fn):
    p = tmp_path / name
    make(p)
    if fn is not read_tem and msg.startswith('cannot be read as a P'): pytest.skip('PNG metadata is optional; pixels fail in read_tem')
    if fn is not read_tem and name == 'cut.tif': pytest.skip('header intact: metadata still readable')
    with pytest.raises(ImageReadError) as e:
        fn(p)
    assert str(p) in str(e.value) and msg in str(e.value)
    assert e.value.__cause__ is None or isinstance(e.value.__cause__, AccordsError)


# ---------------------------------------------------------------- magnification and pixel size
@pytest.mark.parametrize('name,mag', [
    ('AC_UT_G_04_01_UO_200X_0003.png', 200), ('1AC_UT_GO_02_01_2000X_0002.tiff', 2000), ('x_100000x_1.tif', 100000),
    ('a-20kX-b.dm4', 20000), ('s 2.5KX.tif', 2500), ('AC_UT_G_04_01_UO_0003.png', None), ('box_x_3.tif', None),
    ('AC_UT_rGO_01_01_UO_5000X_0004.TIF', 5000)])
def test_parse_magnification(name, mag):
    assert parse_magnification(name) == mag


FEI = '[User]\r\nDate=1/1/2026\r\n[Scan]\r\nPixelWidth=2.5e-09\r\n'
ZEISS = '\r\n0\r\nAP_IMAGE_PIXEL_SIZE\r\nImage Pixel Size = 250 pm\r\n'
META = [
    ('ij.tif', lambda p: write_tem_tiff(p, IMG16, nm_per_px=0.42), PixelSize(0.42, 'imagej')),
    ('ij_um.tif', lambda p: tifffile.imwrite(p, IMG16, imagej=True, resolution=(250, 250), metadata={'unit': 'micron'}),
     PixelSize(4.0, 'imagej')),
    ('o.ome.tif', lambda p: tifffile.imwrite(p, IMG16, ome=True, metadata={'axes': 'YX', 'PhysicalSizeX': 0.002}),
     PixelSize(2.0, 'ome')),
    ('fei.tif', lambda p: tifffile.imwrite(p, IMG16, extratags=[(34680, 's', 0, FEI, True)]), PixelSize(2.5, 'fei')),
    ('zeiss.tif', lambda p: tifffile.imwrite(p, IMG16, extratags=[(34118, 's', 0, ZEISS, True)]), PixelSize(0.25, 'zeiss')),
    ('res.tif', lambda p: tifffile.imwrite(p, IMG16, resolution=(1e6, 1e6), resolutionunit='CENTIMETER'),
     PixelSize(10.0, 'tiff-resolution')),
    ('dpi.tif', lambda p: tifffile.imwrite(p, IMG16, resolution=(300, 300), resolutionunit='INCH'), PixelSize(None, 'none')),
    ('bare.tif', lambda p: tifffile.imwrite(p, IMG16), PixelSize(None, 'none')),
    ('a.dm3', lambda p: write_dm(p, IMG16, nm_per_px=1.5, unit='Å'), PixelSize(0.15, 'dm')),
    ('a.dm4', lambda p: write_dm(p, IMGF, nm_per_px=0.002, unit='µm'), PixelSize(2.0, 'dm')),
    ('diff.dm4', lambda p: write_dm(p, IMGF, nm_per_px=0.002, unit='1/nm'), PixelSize(None, 'none')),
    ('a.png', lambda p: iio.imwrite(p, IMG8), PixelSize(None, 'none')),
]


@pytest.mark.parametrize('name,make,expected', META, ids=[m[0] for m in META])
def test_read_pixel_size(tmp_path, name, make, expected):
    make(tmp_path / name)
    got = read_pixel_size(tmp_path / name)
    assert got.source == expected.source
    if expected.nm_per_px is None: assert got.nm_per_px is None and got.unit == 'px'
    else: assert got.nm_per_px == pytest.approx(expected.nm_per_px, rel=1e-5)


def test_dm_magnification(tmp_path):
    write_dm(tmp_path / 'a.dm4', IMG16, nm_per_px=0.3, magnification=150000)
    assert read_metadata(tmp_path / 'a.dm4')['magnification'] == 150000


@pytest.mark.parametrize('name,kw,expected', [
    ('AC_UT_GO_02_01_UO_2000X_0001.tif', dict(nm_per_px=7.0), PixelSize(7.0, 'imagej')),
    ('AC_UT_GO_02_01_UO_2000X_0002.tif', {}, PixelSize(6.9, 'calibration-table')),
    ('AC_UT_GO_02_01_UO_5000X_0003.tif', {}, PixelSize(2.8, 'camera-pixel')),
    ('AC_UT_GO_02_01_UO_0004.tif', {}, PixelSize(None, 'none')),
    ('AC_UT_GO_02_01_UO_0005.tif', dict(magnification=2000), PixelSize(6.9, 'calibration-table'))])
def test_pixel_size_fallbacks(tmp_path, name, kw, expected):
    write_tem_tiff(tmp_path / name, IMG8, **kw)
    got = pixel_size(tmp_path / name, CalibrationConfig(nm_per_px={2000: 6.9}, camera_pixel_nm=14000))
    assert got.source == expected.source
    assert (got.nm_per_px is None) == (expected.nm_per_px is None)
    if expected.nm_per_px: assert got.nm_per_px == pytest.approx(expected.nm_per_px)


# ---------------------------------------------------------------- ilastik HDF5
P = RNG.random((9, 7, 3)).astype(np.float32)  # y, x, c


@pytest.mark.parametrize('axes,arr', [('yxc', P), ('cyx', P.transpose(2, 0, 1)), ('tzyxc', P[None, None]),
                                      ('xyc', P.transpose(1, 0, 2)), ('zcyx', P.transpose(2, 0, 1)[None])])
def test_ilastik_round_trip(tmp_path, axes, arr):
    write_ilastik_h5(tmp_path / 'p.h5', arr, axes)
    np.testing.assert_array_equal(read_ilastik_h5(tmp_path / 'p.h5'), P)
    np.testing.assert_array_equal(read_ilastik_h5(tmp_path / 'p.h5', axes='cyx'), P.transpose(2, 0, 1))
    with h5py.File(tmp_path / 'p.h5', 'r') as f:
        tags = json.loads(f['exported_data'].attrs['axistags'])
    assert [a['key'] for a in tags['axes']] == list(axes)
    assert all(a['typeFlags'] == {'c': 1, 't': 8}.get(a['key'], 2) for a in tags['axes'])


def test_ilastik_labels_and_named_dataset(tmp_path):
    lab = RNG.integers(0, 4, (9, 7, 1), dtype=np.uint8)
    write_ilastik_h5(tmp_path / 'l.h5', lab, 'yxc', dataset='labels')
    np.testing.assert_array_equal(read_ilastik_h5(tmp_path / 'l.h5'), lab)             # the only dataset
    np.testing.assert_array_equal(read_ilastik_h5(tmp_path / 'l.h5', 'labels', axes='yx'), lab[..., 0])


def test_ilastik_bad(tmp_path):
    write_ilastik_h5(tmp_path / 'p.h5', P, 'yxc')
    with pytest.raises(IlastikFormatError, match=r"no dataset 'probabilities' in the file; datasets present: \['exported_data'\]"):
        read_ilastik_h5(tmp_path / 'p.h5', 'probabilities')
    with h5py.File(tmp_path / 'two.h5', 'w') as f: f['a'] = P; f['b'] = P
    with pytest.raises(IlastikFormatError, match='two.h5: no dataset .exported_data. and 2 datasets'):
        read_ilastik_h5(tmp_path / 'two.h5')
    (tmp_path / 'e.h5').write_bytes(b'')
    with pytest.raises(IlastikFormatError, match='e.h5: the file is empty'): read_ilastik_h5(tmp_path / 'e.h5')
    (tmp_path / 't.h5').write_text('not hdf5')
    with pytest.raises(IlastikFormatError, match='t.h5: not a HDF5 file'): read_ilastik_h5(tmp_path / 't.h5')
    (tmp_path / 'cut.h5').write_bytes((tmp_path / 'p.h5').read_bytes()[:200])
    with pytest.raises(IlastikFormatError, match='cut.h5: cannot be read as HDF5'): read_ilastik_h5(tmp_path / 'cut.h5')
    with h5py.File(tmp_path / 'noax.h5', 'w') as f: f['exported_data'] = P
    with pytest.warns(UserWarning, match="no 'axistags' attribute; assuming axes 'yxc'"):
        np.testing.assert_array_equal(read_ilastik_h5(tmp_path / 'noax.h5'), P)


# ---------------------------------------------------------------- inventory stage and CLI
def test_run_inventory(tmp_path):
    root = tmp_path / 'data'
    write_tem_tiff(root / 'GO_02' / 'AC_UT_GO_02_01_UO_2000X_0001.tif', IMG8, nm_per_px=6.9)
    write_tem_tiff(root / 'G_04' / 'AC_UT_G_04_01_UO_0002.tif', IMG16)
    (root / 'G_04' / 'AC_UT_G_04_01_UO_200X_0003.tif').write_text('oops')
    cfg = load_config(overrides={'data.root': str(root), 'io.thumbnails': 0, 'io.max_pixels_in_memory': 500})
    s = run_inventory(cfg, tmp_path / 'run')
    assert (s['images'], s['read'], s['failed']) == (3, 2, 1)
    inv = pd.read_csv(tmp_path / 'run' / 'inventory.csv')
    assert inv['material'].tolist() == ['GO_02', 'G_04']
    assert inv['pixel_size_source'].tolist() == ['imagej', 'none']
    assert inv['max'].tolist() == [IMG8.max(), IMG16.max()]                     # banded statistics (500 px bands)
    assert inv['mean'].iloc[1] == pytest.approx(IMG16.mean())
    assert inv['std'].iloc[1] == pytest.approx(IMG16.std(), rel=1e-4)
    rows = FailureLog(tmp_path / 'run', 'io').rows()
    assert len(rows) == 1 and 'not a TIFF file' in rows[0]['reason']
    assert run_inventory(cfg, tmp_path / 'run')['skipped'] is True


def test_list_images(tmp_path):
    for f in ['b/x_2000X.TIF', 'a/y.tif', 'a/.y.tmp.tif', 'a/z.png']:
        (tmp_path / f).parent.mkdir(exist_ok=True, parents=True); (tmp_path / f).write_bytes(b'.')
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, '**/*.tif')] == ['a/y.tif', 'b/x_2000X.TIF']


def test_inspect_main(tmp_path, capsys):
    write_tem_tiff(tmp_path / 'AC_UT_G_04_01_UO_200X_0001.tif', IMG16)
    assert inspect_main([str(tmp_path / 'AC_UT_G_04_01_UO_200X_0001.tif')]) == 0
    out = capsys.readouterr().out
    assert 'magnification 200x' in out and '[camera-pixel]' in out and '53 x 37 uint16' in out
    (tmp_path / 'e.tif').write_bytes(b'')
    assert inspect_main([str(tmp_path / 'e.tif')]) == 1
    assert 'e.tif: the file is empty' in capsys.readouterr().err

"""Tests of accords_tem.io: readers on files written in the test, metadata, magnification, ilastik HDF5, bad input."""
import json, warnings
from pathlib import Path

import cv2
import h5py
import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile

from accords_tem.core import AccordsError, CalibrationConfig, FailureLog, IlastikFormatError, ImageReadError, load_config
from accords_tem.io import (IOConfig, LazyTiff, PixelSize, content_rows, file_format, image_stats, inspect_main, list_images,
                            open_tem_lazy, parse_magnification, pixel_size, read_ilastik_h5, read_magnification, read_metadata,
                            read_pixel_size, read_region, read_tem, run_inventory, to_float01, write_dm, write_ilastik_h5,
                            write_tem_tiff)
from accords_tem.layout import layout_problems

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
    assert read_magnification(tmp_path / 'a.dm4') == (150000, 'dm')


ZEISS_MAG = '\r\n0\r\n\r\nAP_PIXEL_SIZE\r\nPixel Size = 7.344 nm\r\nAP_MAG\r\nMag = 50.00 K X\r\n'
FEI_MAG = ('[User]\r\nDate=1/1/2026\r\n[Beam]\r\nHFW=1.28e-05\r\n[Scan]\r\nPixelWidth=1.25e-08\r\nHorFieldsize=1.28e-05\r\n'
           '[Image]\r\nResolutionX=1024\r\nMagCanvasRealWidth=0.128\r\n')


@pytest.mark.parametrize('name,tag,text,mag,nm', [
    ('zeiss_200X.tif', 34118, ZEISS_MAG, (50000, 'zeiss'), PixelSize(7.344, 'zeiss')),           # the tag beats the name
    ('zeiss_k.tif', 34118, ZEISS_MAG.replace('50.00 K X', '2.50 K X'), (2500, 'zeiss'), PixelSize(7.344, 'zeiss')),
    ('zeiss_x.tif', 34118, ZEISS_MAG.replace('50.00 K X', '500 X'), (500, 'zeiss'), PixelSize(7.344, 'zeiss')),
    ('fei_sfeg.tif', 34680, FEI_MAG, (10000, 'fei'), PixelSize(12.5, 'fei')),                     # 0.128 m / 12.8 um
    ('fei_helios.tif', 34682, FEI_MAG, (10000, 'fei'), PixelSize(12.5, 'fei')),
    ('fei_nocanvas_300X.tif', 34682, FEI_MAG.replace('MagCanvasRealWidth=0.128', 'MagCanvasRealWidth='), (300, 'file-name'),
     PixelSize(12.5, 'fei'))])
def test_magnification_from_tags(tmp_path, capsys, name, tag, text, mag, nm):
    tifffile.imwrite(tmp_path / name, IMG16, extratags=[(tag, 's', 0, text, True)])
    assert read_magnification(tmp_path / name) == mag
    got = read_pixel_size(tmp_path / name)
    assert got.source == nm.source and got.nm_per_px == pytest.approx(nm.nm_per_px)
    assert inspect_main([str(tmp_path / name)]) == 0
    assert f'magnification {mag[0]}x [{mag[1]}]' in capsys.readouterr().out


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
    assert layout_problems(tmp_path / 'run') == []        # inventory.csv and failures.csv hold the layout's columns
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
    assert inspect_main([str(tmp_path / 'e.tif')]) == 1                        # nothing could be read
    assert 'e.tif: the file is empty' in capsys.readouterr().err
    assert inspect_main([str(tmp_path / 'e.tif'), str(tmp_path / 'AC_UT_G_04_01_UO_200X_0001.tif')]) == 0   # partial
    assert '1 of 2 file(s) could not be read' in capsys.readouterr().err


# ---------------------------------------------------------------- data bars
def _micrograph(H=480, W=640, seed=0):
    "Noise and dark disks: something a TEM could have taken, with no bar."
    r = np.random.default_rng(seed)
    a = np.clip(r.normal(140, 25, (H, W)), 0, 255)
    for _ in range(12):
        cv2.circle(a, (int(r.integers(0, W)), int(r.integers(0, H))), int(r.integers(8, 70)), float(r.integers(20, 80)), -1)
    return np.clip(a + r.normal(0, 6, a.shape), 0, 255).astype(np.uint8)


def _bar(a, rows, value, text_value, where='bottom'):
    a = a.copy()
    H = a.shape[0]
    sl = slice(H - rows, H) if where == 'bottom' else slice(0, rows)
    a[sl] = value
    y = (H - rows + rows // 2 + 6) if where == 'bottom' else rows // 2 + 6
    cv2.putText(a, 'SEI 5.0kV X50,000 100nm WD 8.1mm', (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, text_value, 1)
    return a



@pytest.mark.parametrize('rows,value,text,where,expected', [
    (56, 0, 255, 'bottom', (0, 424)), (30, 255, 0, 'bottom', (0, 450)), (40, 0, 255, 'top', (40, 480)),
    (64, 90, 250, 'bottom', (0, 416)), (12, 0, 255, 'bottom', (0, 468))])
def test_data_bar_found(rows, value, text, where, expected):
    assert content_rows(_bar(_micrograph(), rows, value, text, where)) == expected


@pytest.mark.parametrize('seed', range(6))
def test_natural_images_not_cut(seed):
    a = _micrograph(seed=seed)
    assert content_rows(a) == (0, 480)
    clipped = a.copy(); cv2.circle(clipped, (320, 560), 200, 0, -1)                  # a clipped dark region at the edge
    assert content_rows(clipped) == (0, 480)
    assert content_rows(np.clip(a.astype(int) * 3 - 250, 0, 255).astype(np.uint8)) == (0, 480)   # heavy clipping everywhere


def test_data_bar_by_hand_and_off():
    a = _bar(_micrograph(), 56, 0, 255)
    assert content_rows(a, data_bar='none') == (0, 480)
    assert content_rows(a, crop=(0, 60)) == (0, 420) and content_rows(_micrograph(), crop=(3, 4)) == (3, 476)
    assert IOConfig(crop_rows=[2, 50]).content_rows(a) == (2, 430) and IOConfig(data_bar='none').content_rows(a) == (0, 480)
    with pytest.raises(ValueError, match='does not fit'): content_rows(a, crop=(300, 200))
    assert image_stats(a, rows=content_rows(a))['zero_fraction'] == image_stats(a[:424])['zero_fraction']


def test_data_bar_in_the_inventory_and_inspect(tmp_path, capsys):
    root = tmp_path / 'data'
    a = _bar(_micrograph(), 56, 0, 255).astype(np.uint16) * 16
    (root / 'S').mkdir(parents=True)
    tifffile.imwrite(root / 'S' / 'sem_1.tif', a, extratags=[(34118, 's', 0, ZEISS_MAG, True)])
    write_tem_tiff(root / 'S' / 'plain_2000X_2.tif', _micrograph(seed=3))
    cfg = load_config(overrides={'data.root': str(root), 'io.thumbnails': 0})
    run_inventory(cfg, tmp_path / 'run')
    inv = pd.read_csv(tmp_path / 'run' / 'inventory.csv').set_index('file')
    assert inv.loc['S/sem_1.tif', ['content_top', 'content_bottom', 'magnification']].tolist() == [0, 424, 50000]
    assert inv.loc['S/sem_1.tif', 'magnification_source'] == 'zeiss' and inv.loc['S/plain_2000X_2.tif', 'magnification_source'] == 'file-name'
    assert inv.loc['S/plain_2000X_2.tif', ['content_top', 'content_bottom']].tolist() == [0, 480]
    assert inv.loc['S/sem_1.tif', 'zero_fraction'] < 0.01                       # the black bar is not "clipped black"
    assert inspect_main([str(root / 'S' / 'sem_1.tif')]) == 0
    out = capsys.readouterr().out
    assert 'magnification 50000x [zeiss], pixel size 7.344 nm/px [zeiss], data bar bottom 56 rows (found; content rows 0-424)' in out


EMPS = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'emps-train'


@pytest.mark.skipif(not (EMPS / 'images').is_dir(), reason='../shared/data/emps-train not present')
def test_data_bars_on_real_figures():
    "366 real EM figure crops (Yildirim & Cole 2021): every cut must be a bar, i.e. hold (almost) no annotated particle."
    cut = []
    for p in sorted((EMPS / 'images').glob('*.png')):
        a = read_tem(p)
        top, bottom = content_rows(a)
        if (top, bottom) == (0, a.shape[0]): continue
        seg = iio.imread(EMPS / 'segmaps' / p.name)
        outside = np.concatenate([seg[:top].ravel(), seg[bottom:].ravel()])
        cut.append((p.name, (outside > 0).mean()))
    assert 30 <= len(cut) <= 50, len(cut)                                     # 38 found when written, every one a bar
    assert max(f for _, f in cut) < 0.01, sorted(cut, key=lambda c: -c[1])[:3]


# ---------------------------------------------------------------- exit codes of the command (stage 00 and inspect)
def _cli(capsys, *args):
    from accords_tem.cli import main
    rc = main(list(args))
    got = capsys.readouterr()
    return rc, got.out, got.err


def test_cli_all_failed_exits_1_partial_exits_0(tmp_path, capsys):
    bad, mixed = tmp_path / 'bad', tmp_path / 'mixed'
    for root in (bad, mixed):
        (root / 'G').mkdir(parents=True)
        (root / 'G' / 'x_2000X_1.tif').write_text('not an image'); (root / 'G' / 'y_2000X_2.tif').write_bytes(b'')
    write_tem_tiff(mixed / 'G' / 'y_2000X_2.tif', IMG8)
    cfg = tmp_path / 'c.yaml'; cfg.write_text('data: {ground_truth: null}\nio: {thumbnails: 0}\n')
    rc, out, err = _cli(capsys, 'inventory', '--config', str(cfg), '--data', str(bad), '--out', str(tmp_path / 'r1'))
    assert rc == 1 and "all 2 input(s) of stage 'io' failed" in err and 'failures.csv' in err and 'x_2000X_1.tif' in err, err
    assert len(FailureLog(tmp_path / 'r1', 'io').rows()) == 2
    rc, out, err = _cli(capsys, 'inventory', '--config', str(cfg), '--data', str(mixed), '--out', str(tmp_path / 'r2'))
    assert rc == 0 and "1 of 2 input(s) of stage 'io' failed; the others were processed" in err, err
    assert pd.read_csv(tmp_path / 'r2' / 'inventory.csv')['file'].tolist() == ['G/y_2000X_2.tif']
    assert _cli(capsys, 'inspect', str(bad / 'G' / 'x_2000X_1.tif'), str(bad / 'G' / 'y_2000X_2.tif'))[0] == 1
    s = run_inventory(load_config(cfg, {'data.root': str(bad)}), tmp_path / 'r3')      # a library call: a summary, no error
    assert (s['read'], s['failed']) == (0, 2)


def test_cli_uses_the_run_config(tmp_path, capsys):
    (tmp_path / 'd' / 'G').mkdir(parents=True)
    write_tem_tiff(tmp_path / 'd' / 'G' / 'mine_5000X_1.tif', IMG8)
    run = tmp_path / 'run'; run.mkdir()
    (run / 'config.yaml').write_text(f"name: own\ndata: {{root: '{tmp_path / 'd'}', ground_truth: null}}\nio: {{thumbnails: 0}}\n")
    rc, out, err = _cli(capsys, 'inventory', '--out', str(run))
    assert rc == 0 and "(the run's own)" in err
    assert pd.read_csv(run / 'inventory.csv')['file'].tolist() == ['G/mine_5000X_1.tif']

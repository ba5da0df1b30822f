"""Bad inputs and faults of issue 18 (items 3-7 and the weaker points): each test reproduces one fault with small files
written here; it failed before the fix and passes after it."""
import contextlib, errno, io as _io, json, os, subprocess, sys
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import tifffile
import torch
import yaml

from accords_tem import core
from accords_tem.core import (CheckpointDamagedError, ConfigError, FailureLog, ImageReadError, LabelSheetError, OutputWriteError,
                              atomic_path, atomic_write, load_config, save_csv, save_json, save_npy)
from accords_tem.io import read_tem, write_tem_tiff


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    old = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _cli(*args):
    from accords_tem.cli import main
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def _nan_tif(path, shape=(40, 40), n=3):
    a = np.random.default_rng(0).random(shape).astype(np.float32)
    a.flat[:n] = np.nan
    write_tem_tiff(path, a)
    return path


def _gray(path, bright=False, size=40, seed=0):
    rng = np.random.default_rng(seed)
    tifffile.imwrite(path, (rng.normal(0.7 if bright else 0.3, 0.05, (size, size)) * 60000).clip(0, 65535).astype(np.uint16))
    return path


def _config(tmp_path, root, **extra) -> Path:
    d = {'data': {'root': str(root), 'ground_truth': None}, 'io': {'thumbnails': 0}, 'normalization': {'figures': False}}
    for k, v in extra.items(): d.setdefault(k, {}).update(v)
    p = tmp_path/'c.yaml'; p.write_text(yaml.safe_dump(d))
    return p


# ---------------------------------------------------------------- 3. NaN/inf pixels, reported per image where images are read

def test_read_tem_reports_nan_pixels(tmp_path):
    with pytest.raises(ImageReadError, match=r'bad\.tif: 3 NaN/inf pixels'): read_tem(_nan_tif(tmp_path/'bad.tif'))
    a = np.ones((8, 8), np.float32); a[0, 0] = np.inf
    write_tem_tiff(tmp_path/'inf.tif', a)
    with pytest.raises(ImageReadError, match='1 NaN/inf pixels'): read_tem(tmp_path/'inf.tif')


def test_normalize_records_nan_image(tmp_path):
    from accords_tem.normalization import run_normalization
    root = tmp_path/'data'/'G'; root.mkdir(parents=True)
    _nan_tif(root/'bad_2000X_1.tif'); _gray(root/'good_2000X_2.tif')
    cfg = load_config(_config(tmp_path, tmp_path/'data'))
    run_normalization(cfg, tmp_path/'run', progress=False)
    rows = FailureLog(tmp_path/'run', '').rows('normalization')
    assert len(rows) == 1 and 'bad_2000X_1.tif' in rows[0]['file'] and '3 NaN/inf pixels' in rows[0]['reason']
    assert not list((tmp_path/'run'/'normalized').rglob('bad_2000X_1.*'))          # not turned into a black image


def test_inventory_counts_nan_in_bands(tmp_path):
    "A big image is read lazily in bands; its NaN pixels are found there too."
    from accords_tem.io import IOConfig, inventory_row
    p = _nan_tif(tmp_path/'big.tif', (64, 64), n=5)
    with pytest.raises(ImageReadError, match='5 NaN/inf pixels'):
        inventory_row(p, tmp_path, io_cfg=IOConfig(max_pixels_in_memory=1000, data_bar='none'))


def test_predict_reader_reports_nan(tmp_path):
    "`predict` reads its images through io.read_tem: NaN pixels are an error naming the file, not black."
    from accords_tem.io import read_tem
    with pytest.raises(ImageReadError, match=r'x\.tif: 3 NaN/inf pixels'): read_tem(_nan_tif(tmp_path/'x.tif'))


HEADER = ['filename', 'Image Type', 'Num_particles', 'Num_materials', 'Morphology', 'Nanostructures', 'Usability']


def _sheet_folder(folder:Path, mat:str, n:int=6, nan_at:int|None=None):
    folder.mkdir(parents=True, exist_ok=True)
    rows = [HEADER]
    for i in range(n):
        name = f'AC_UT_{mat}_01_UO_{(2000, 20000)[i % 2]}X_{i:04d}.tif'
        many = i % 3 == 0
        if i == nan_at: _nan_tif(folder/name)
        else: _gray(folder/name, many, seed=i)
        rows.append([name, 'BF', 'Many (>10)' if many else 'One', 'One', 'Thick flat rigid', 'No', 'Yes' if many else 'No'])
    return rows


def _classifier_cfg(root, **over):
    return load_config(None, {'data.root': str(root), 'data.ground_truth': None, 'device': 'cpu',
                              'classifier.backbones': ['resnet18'], 'classifier.pretrained': False, 'classifier.image_size': 40,
                              'classifier.epochs': 1, 'classifier.batch_size': 4, 'classifier.progress': False,
                              'classifier.thumbnail_size': 64, 'classifier.threads': 1, 'classifier.cv_folds': 0, **over})


def test_label_sheet_nan_image_is_a_failure_row(tmp_path):
    from accords_tem.classifier import run_classifier
    root = tmp_path/'data'
    for mat, nan_at in (('GO_02', 2), ('G_04', None)):
        rows = _sheet_folder(root/mat, mat, nan_at=nan_at)
        (root/mat/f'{mat}_labels.csv').write_text('\n'.join(','.join(r) for r in rows) + '\n')
    s = run_classifier(_classifier_cfg(root), tmp_path/'run')
    assert s['n_labelled'] == 11 and not s['skipped']
    rows = FailureLog(tmp_path/'run', '').rows('classifier')
    assert any('AC_UT_GO_02_01_UO_2000X_0002.tif' in r['file'] and 'NaN/inf pixels' in r['reason'] for r in rows), rows
    pr = pd.read_csv(tmp_path/'run'/'classifier'/'predictions.csv')
    assert 'AC_UT_GO_02_01_UO_2000X_0002.tif' not in set(pr.filename)


def test_classify_never_gives_nan_probabilities(tmp_path):
    from accords_tem.classifier import DEFAULT_TASKS, ClassifierBundle, ClassifierConfig, NormStats, classify_main
    b = ClassifierBundle.create('resnet18', DEFAULT_TASKS, NormStats(40, (0.5, 99.5), 0.45, 0.21, 3.9, 0.4),
                                ClassifierConfig(image_size=40, pretrained=False, threads=1, progress=False))
    b.save(tmp_path/'model')
    imgs = tmp_path/'imgs'; imgs.mkdir()
    _gray(imgs/'a_20000X_1.tif'); _gray(imgs/'b_20000X_2.tif', True); _nan_tif(imgs/'c_20000X_3.tif')
    assert classify_main(['--model', str(tmp_path/'model'), '--images', str(imgs), '--out', str(tmp_path/'out'), '--no-thumbnails']) == 0
    pr = pd.read_csv(tmp_path/'out'/'predictions.csv')
    assert sorted(pr.filename) == ['a_20000X_1.tif', 'b_20000X_2.tif']
    assert pr[[f'{t}_prob' for t in DEFAULT_TASKS]].notna().all().all()             # 20000X: every task assessable
    rows = FailureLog(tmp_path/'out', '').rows('classify')
    assert len(rows) == 1 and 'c_20000X_3.tif' in rows[0]['file'] and 'NaN/inf pixels' in rows[0]['reason']


# ---------------------------------------------------------------- 4. bad label sheets are per-file failures

def _bad_sheets(root:Path):
    "GO_02: no filename column; G_04: an empty CSV; rGO_01: a corrupt .xlsm."
    for mat in ('GO_02', 'G_04', 'rGO_01'): _sheet_folder(root/mat, mat)
    (root/'GO_02'/'GO_02_labels.csv').write_text('file name,Usability\na.tif,Yes\n')
    (root/'G_04'/'G_04_labels.csv').write_text('')
    (root/'rGO_01'/'rGO_01_labels.xlsm').write_bytes(b'PK\x03\x04 this is not a workbook')


def test_load_labels_skips_bad_sheets(tmp_path):
    from accords_tem.classifier import find_sheets, load_labels
    root = tmp_path/'data'; _bad_sheets(root)
    rows = _sheet_folder(root/'GOOD', 'GOOD')
    (root/'GOOD'/'GOOD_labels.csv').write_text('\n'.join(','.join(r) for r in rows) + '\n')
    log = FailureLog(tmp_path/'run', 'classifier')
    ls = load_labels(find_sheets(root), image_pattern='*.tif', log=log)
    assert len(ls.table) == 6 and set(ls.table.material) == {'GOOD'} and len(ls.failed) == 3
    files = {Path(r['file']).name: r['reason'] for r in log.rows()}
    assert set(files) == {'GO_02_labels.csv', 'G_04_labels.csv', 'rGO_01_labels.xlsm'}
    assert "no 'filename' column" in files['GO_02_labels.csv'] and 'empty' in files['G_04_labels.csv']
    assert (ls.issues.kind == 'unreadable_sheet').sum() == 3


def test_stage_04_runs_on_the_good_sheets(tmp_path):
    root = tmp_path/'data'; _bad_sheets(root)
    for mat in ('A_1', 'B_2'):
        rows = _sheet_folder(root/mat, mat)
        (root/mat/f'{mat}_labels.csv').write_text('\n'.join(','.join(r) for r in rows) + '\n')
    c = _config(tmp_path, root, classifier=dict(backbones=['resnet18'], pretrained=False, image_size=40, epochs=1, batch_size=4,
                                                progress=False, thumbnail_size=64, threads=1, cv_folds=0))
    p = yaml.safe_load(c.read_text()); p['device'] = 'cpu'; c.write_text(yaml.safe_dump(p))
    rc, out, err = _cli('train-classifier', '--config', str(c), '--out', str(tmp_path/'run'))
    assert rc == 0, err
    assert "'n_labelled': 12" in out and "'n_sheets_failed': 3" in out, out
    fails = pd.read_csv(tmp_path/'run'/'failures.csv')
    assert {'GO_02_labels.csv', 'G_04_labels.csv', 'rGO_01_labels.xlsm'} <= {Path(f).name for f in fails.file}


def test_stage_04_all_sheets_bad_is_an_error(tmp_path):
    root = tmp_path/'data'; _bad_sheets(root)
    c = _config(tmp_path, root)
    rc, out, err = _cli('train-classifier', '--config', str(c), '--out', str(tmp_path/'run'))
    assert rc != 0 and 'none of the 3 label sheet(s) could be read' in err and 'rGO_01_labels.xlsm' in err, err
    assert len(FailureLog(tmp_path/'run', '').rows('classifier')) == 3


# ---------------------------------------------------------------- 5. class names in the configuration checked at load time

@pytest.mark.parametrize('key,value', [('objects.object_classes', ['GFM', 'carbonhoel']), ('report.size_classes', ['gfm']),
                                       ('unet.target_classes', ['GFM', 'hole']), ('postprocessing.opening_class', 'holes'),
                                       ('masks.thresholds', {'GMF': 0.4}), ('report.background_classes', ['undefind'])])
def test_class_name_typo_is_a_load_error(tmp_path, key, value):
    sec, k = key.split('.')
    p = tmp_path/'c.yaml'; p.write_text(yaml.safe_dump({sec: {k: value}}))
    with pytest.raises(ConfigError, match=rf"c\.yaml: '{key}' names unknown class") as e: load_config(p)
    assert "the configured classes are ['GFM', 'carbonhole', 'undefined']" in str(e.value)


def test_objects_typo_fails_before_any_output(tmp_path):
    "A typo in objects.object_classes used to replace objects.csv with an empty one and exit 0."
    c = _config(tmp_path, tmp_path, objects={'object_classes': ['GFM', 'carbonhoel']})
    rc, out, err = _cli('objects', '--config', str(c), '--out', str(tmp_path/'run'))
    assert rc == 2 and "'objects.object_classes' names unknown class 'carbonhoel'" in err, err
    assert not (tmp_path/'run'/'objects').exists()


# ---------------------------------------------------------------- 6. permissions as the umask gives them

@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_get_umask_permissions(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        save_csv(pd.DataFrame({'a': [1]}), tmp_path/'t.csv'); save_npy(np.zeros(2), tmp_path/'a.npy'); save_json({}, tmp_path/'j.json')
        with atomic_path(tmp_path/'img.png') as tmp: tmp.write_bytes(b'x')
        write_tem_tiff(tmp_path/'i.tif', np.zeros((4, 4), np.uint8))
    finally: os.umask(old)
    for f in ('t.csv', 'a.npy', 'j.json', 'img.png', 'i.tif'):
        assert (tmp_path/f).stat().st_mode & 0o777 == mode, f


def test_rerun_mends_0600_outputs(tmp_path):
    "An output written 0600 by an earlier version gets the umask's permissions when it is written again."
    p = tmp_path/'shared.csv'; p.write_text('x'); p.chmod(0o600)
    old = os.umask(0o022)
    try: save_csv(pd.DataFrame({'a': [1]}), p)
    finally: os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------- 7. file names are never glob patterns

@pytest.mark.parametrize('stem', ['img[1]', 'a]b', 'x*y', 'what?'])
def test_names_with_glob_characters_are_found(tmp_path, stem):
    from accords_tem.normalization import normalized_image_path
    from accords_tem.objects import _class_map_files, model_instances
    (tmp_path/'normalized'/'G').mkdir(parents=True); (tmp_path/'normalized'/'G'/f'{stem}.png').write_bytes(b'x')
    assert normalized_image_path(tmp_path, stem) == tmp_path/'normalized'/'G'/f'{stem}.png'
    (tmp_path/'unet'/'predict'/'instances').mkdir(parents=True)
    (tmp_path/'unet'/'predict'/'instances'/f'{stem}.tif').write_bytes(b'x')
    assert model_instances(tmp_path, stem) == tmp_path/'unet'/'predict'/'instances'/f'{stem}.tif'
    (tmp_path/'unet'/'predict'/'masks').mkdir(parents=True)
    for c in ('GFM', 'carbonhole'): (tmp_path/'unet'/'predict'/'masks'/f'{stem}_{c}.png').write_bytes(b'x')
    files = _class_map_files(load_config(None), tmp_path, stem, 'unet')
    assert set(files) == {'GFM', 'carbonhole'} and files['GFM'].name == f'{stem}_GFM.png'


# ---------------------------------------------------------------- weaker points

def test_damaged_classifier_model_names_the_file(tmp_path):
    from accords_tem.classifier import DEFAULT_TASKS, ClassifierBundle, ClassifierConfig, NormStats
    b = ClassifierBundle.create('resnet18', DEFAULT_TASKS, NormStats(40, (0.5, 99.5), 0.45, 0.21, 3.9, 0.4),
                                ClassifierConfig(image_size=40, pretrained=False, threads=1))
    b.save(tmp_path/'m')
    f = tmp_path/'m'/'model.pth'; f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(CheckpointDamagedError, match=r'model\.pth: cannot be read as model weights'): ClassifierBundle.load(tmp_path/'m')


def test_damaged_unet_model_names_the_file(tmp_path):
    from safetensors.torch import save_file
    from accords_tem.seg_train import load_model
    d = tmp_path/'model'; d.mkdir()
    for f in ('config.json', 'thresholds.json'): (d/f).write_text('{}')
    (d/'unet.json').write_text('{"unet": {}}')
    save_file({'w': torch.zeros(1000)}, d/'model.safetensors')
    b = (d/'model.safetensors').read_bytes(); (d/'model.safetensors').write_bytes(b[:len(b) // 2])
    with pytest.raises(CheckpointDamagedError, match=r'model\.safetensors: cannot be read as model weights'): load_model(d)


def test_full_disk_is_a_clear_cli_error(tmp_path, monkeypatch):
    root = tmp_path/'data'/'G'; root.mkdir(parents=True); _gray(root/'a_2000X_1.tif')
    c = _config(tmp_path, tmp_path/'data')
    def full(fd): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(core.os, 'fsync', full)
    rc, out, err = _cli('inventory', '--config', str(c), '--out', str(tmp_path/'run'))
    assert rc == 2 and 'cannot write the output (No space left on device)' in err and 'config.yaml' in err, err
    assert 'Traceback' not in err
    assert not [p for p in (tmp_path/'run').iterdir() if p.name != '.accords-tem.lock' and p.name.endswith('.tmp')]


def test_read_only_output_is_a_clear_cli_error(tmp_path, monkeypatch):
    "A read-only folder (simulated: the tests run as root, who may write anywhere)."
    root = tmp_path/'data'/'G'; root.mkdir(parents=True); _gray(root/'a_2000X_1.tif')
    c = _config(tmp_path, tmp_path/'data')
    real = core.tempfile.mkstemp
    def ro(*a, **k):
        if str(k.get('dir', '')).startswith(str(tmp_path/'run')): raise OSError(errno.EROFS, 'Read-only file system', k['dir'])
        return real(*a, **k)
    monkeypatch.setattr(core.tempfile, 'mkstemp', ro)
    rc, out, err = _cli('inventory', '--config', str(c), '--out', str(tmp_path/'run'))
    assert rc == 2 and 'config.yaml: cannot write the output (Read-only file system)' in err, err


def test_image_too_small(tmp_path):
    import imageio.v3 as iio
    iio.imwrite(tmp_path/'dot.png', np.zeros((1, 1), np.uint8))
    with pytest.raises(ImageReadError, match=r'dot\.png: image too small: 1x1 px'): read_tem(tmp_path/'dot.png')


def test_multipage_tiff_warns_and_reads_page_1(tmp_path):
    tifffile.imwrite(tmp_path/'s.tif', np.stack([np.full((8, 9), k, np.uint8) for k in (1, 2)]), photometric='minisblack')
    with pytest.warns(UserWarning, match=r's\.tif: a multi-page TIFF with 2 images; only the first is used'):
        a = read_tem(tmp_path/'s.tif')
    assert (a == 1).all()


def test_predict_summary_line():
    from accords_tem.objects import predict_summary
    b = [dict(stage='predict', items=16, failed=8, log='/o/failures.csv')]
    assert predict_summary(b) == '16 images: 8 ok, 8 failed (see /o/failures.csv)'
    assert predict_summary([dict(stage='predict', items=3, failed=0, log='x')]) == '3 images: 3 ok, 0 failed'


def test_stale_temporaries_are_removed(tmp_path):
    root = tmp_path/'data'/'G'; root.mkdir(parents=True); _gray(root/'a_2000X_1.tif')
    c = _config(tmp_path, tmp_path/'data')
    run = tmp_path/'run'; (run/'normalized'/'G').mkdir(parents=True)
    stale = [run/'.inventory.csv.ab12_xyz.tmp', run/'normalized'/'G'/'.a_2000X_1.k3j4l5m6.tmp.png']
    for p in stale: p.write_bytes(b'half')
    rc, out, err = _cli('inventory', '--config', str(c), '--out', str(run))
    assert rc == 0, err
    assert not any(p.exists() for p in stale) and 'removed 2 temporary file(s)' in err


def test_second_command_into_a_running_folder_is_refused(tmp_path):
    root = tmp_path/'data'/'G'; root.mkdir(parents=True); _gray(root/'a_2000X_1.tif')
    c = _config(tmp_path, tmp_path/'data')
    run = tmp_path/'run'; run.mkdir()
    import socket
    other = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        (run/'.accords-tem.lock').write_text(json.dumps(dict(pid=other.pid, host=socket.gethostname(), started='now')))
        rc, out, err = _cli('inventory', '--config', str(c), '--out', str(run))
        assert rc == 2 and f'another accords-tem (pid {other.pid}' in err, err
        assert not (run/'inventory.csv').exists()
    finally: other.kill(); other.wait()
    rc, out, err = _cli('inventory', '--config', str(c), '--out', str(run))      # its process is gone: the lock is taken over
    assert rc == 0, err
    assert (run/'inventory.csv').exists() and not (run/'.accords-tem.lock').exists()


def test_damaged_bundle_json_names_the_file(tmp_path):
    from accords_tem.classifier import DEFAULT_TASKS, ClassifierBundle, ClassifierConfig, NormStats
    ClassifierBundle.create('resnet18', DEFAULT_TASKS, NormStats(40, (0.5, 99.5), 0.45, 0.21, 3.9, 0.4),
                            ClassifierConfig(image_size=40, pretrained=False, threads=1)).save(tmp_path/'m')
    f = tmp_path/'m'/'bundle.json'; f.write_text(f.read_text()[:50])
    with pytest.raises(CheckpointDamagedError, match=r'bundle\.json: cannot be read'): ClassifierBundle.load(tmp_path/'m')


def test_full_disk_stops_a_batch(tmp_path, monkeypatch):
    "A full disk is not a fault of the input: the batch stops at once instead of recording every image as failed."
    from accords_tem.core import run_batch
    seen = []
    def write(i):
        seen.append(i)
        with atomic_write(tmp_path/f'{i}.bin') as f: raise OSError(errno.ENOSPC, 'No space left on device')
    with pytest.raises(OutputWriteError, match=r'0\.bin: cannot write the output'):
        run_batch(write, range(5), FailureLog(tmp_path, 'x'), progress=False)
    assert seen == [0] and FailureLog(tmp_path, 'x').rows() == []


# ---------------------------------------------------------------- siblings found by a second battery (this session)

def test_complex_pixels_are_not_a_micrograph(tmp_path):
    "A complex TIFF (an FFT, an exit wave) was read with its imaginary part dropped, and the inventory failed with a TypeError."
    tifffile.imwrite(tmp_path/'fft.tif', (np.ones((16, 16)) + 1j).astype(np.complex64))
    with pytest.raises(ImageReadError, match=r'fft\.tif: complex pixel values \(complex64'): read_tem(tmp_path/'fft.tif')


def test_broken_link_is_a_failure_not_a_silent_omission(tmp_path):
    "An image that is a link to an unmounted share was left out of the inventory without a word (predict named it)."
    from accords_tem.io import list_images, run_inventory
    root = tmp_path/'data'/'G'; root.mkdir(parents=True)
    _gray(root/'good_2000X_1.tif'); (root/'gone_2000X_2.tif').symlink_to('/nonexistent/share/x.tif')
    (root/'folder.tif').mkdir()
    assert [p.name for p in list_images(tmp_path/'data')] == ['gone_2000X_2.tif', 'good_2000X_1.tif']
    run_inventory(load_config(_config(tmp_path, tmp_path/'data')), tmp_path/'run')
    rows = FailureLog(tmp_path/'run', '').rows('io')
    assert [(Path(r['file']).name, r['reason']) for r in rows] == [('gone_2000X_2.tif', 'file not found')]


def test_replaced_by_a_damaged_file_leaves_no_stale_output(tmp_path):
    """An image replaced by a damaged file: the re-run logged the failure but kept the earlier image's normalized PNG,
    which stage 03 then used as this image."""
    from accords_tem.normalization import run_normalization
    root = tmp_path/'data'/'G'; root.mkdir(parents=True)
    _gray(root/'a_2000X_1.tif'); _gray(root/'b_2000X_2.tif', seed=1)
    cfg = load_config(_config(tmp_path, tmp_path/'data'))
    run_normalization(cfg, tmp_path/'run', progress=False)
    out = tmp_path/'run'/'normalized'
    assert sorted(p.name for p in out.rglob('*.png')) == ['a_2000X_1.png', 'b_2000X_2.png']
    b = (root/'b_2000X_2.tif').read_bytes(); (root/'b_2000X_2.tif').write_bytes(b[:len(b) // 2])   # truncated
    run_normalization(cfg, tmp_path/'run', progress=False)
    assert sorted(p.name for p in out.rglob('*.png')) == ['a_2000X_1.png']
    assert [Path(r['file']).name for r in FailureLog(tmp_path/'run', '').rows('normalization')] == ['b_2000X_2.tif']


def test_predict_forgets_an_image_that_now_fails(tmp_path):
    """`predict` into the same folder after an image was damaged: its earlier masks and instances stayed and objects.csv
    still measured them (summary.csv too), while predictions.csv and failures.csv said it failed."""
    from PIL import Image
    from accords_tem.seg_data import UnetConfig
    from accords_tem.seg_train import build_model, save_model
    from accords_tem.objects import predict_main
    torch.manual_seed(0)
    u = UnetConfig(encoder='resnet18', encoder_weights=None, decoder_channels=[32, 16, 8], tile_size=64, tile_overlap=16,
                   instance_classes=[], tta_scales=[1.0], threshold_min_images=0, threshold_fallback=False)
    save_model(tmp_path/'model', build_model(u)[0], u, {'GFM': {'threshold': 0.5}, 'carbonhole': {'threshold': 0.5}})
    imgs = tmp_path/'imgs'; imgs.mkdir()
    for i in range(2):
        im = (np.random.default_rng(i).random((64, 64)) * 255).astype(np.uint8); im[10:40, 10:40] = 250
        Image.fromarray(im).save(imgs/f'im{i}.png')
    args = ['--model', str(tmp_path/'model'), '--images', str(imgs), '--out', str(tmp_path/'out'), '--tta', 'none', '--no-figures']
    with contextlib.redirect_stdout(_io.StringIO()): assert predict_main(args) == 0
    out = tmp_path/'out'
    assert (out/'instances'/'im1.tif').exists() and (out/'done'/'im1.json').exists()
    (imgs/'im1.png').write_bytes(b'not a png any more')
    with contextlib.redirect_stdout(_io.StringIO()): assert predict_main(args) == 0
    assert not [p for p in out.rglob('im1*') if p.is_file()]            # masks, instances, probabilities, marker: gone
    for t in ('objects.csv', 'summary.csv', 'predictions.csv'): assert set(pd.read_csv(out/t)['image']) <= {'im0.png'}, t
    assert [Path(r['file']).name for r in FailureLog(out, '').rows('predict')] == ['im1.png']


def test_report_of_a_folder_without_a_run_is_an_error(tmp_path):
    "`report --out` a mistyped folder wrote an empty report (every check skipped or vacuously passed) and exited 0."
    rc, out, err = _cli('report', '--out', str(tmp_path/'typo'))
    assert rc != 0 and 'no run here' in err, (rc, out, err)
    assert not (tmp_path/'typo'/'report.pdf').exists()


def test_blank_frame_is_a_failure(tmp_path):
    "A frame with one value everywhere was normalized (a flat grey PNG) and predicted as one flake over 99.98 % of it."
    from accords_tem.io import check_not_blank
    from accords_tem.normalization import run_normalization
    with pytest.raises(ImageReadError, match=r'b\.tif: blank image: every pixel is 7'): check_not_blank(np.full((9, 9), 7, np.uint16), tmp_path/'b.tif')
    root = tmp_path/'data'/'G'; root.mkdir(parents=True)
    tifffile.imwrite(root/'blank_2000X_1.tif', np.full((32, 32), 7, np.uint16)); _gray(root/'good_2000X_2.tif')
    run_normalization(load_config(_config(tmp_path, tmp_path/'data')), tmp_path/'run', progress=False)
    rows = FailureLog(tmp_path/'run', '').rows('normalization')
    assert [(Path(r['file']).name, r['reason'][:25]) for r in rows] == [('blank_2000X_1.tif', 'blank image: every pixel ')]
    assert [p.name for p in (tmp_path/'run'/'normalized').rglob('*.png')] == ['good_2000X_2.png']


def test_damaged_mask_is_named_as_damaged(tmp_path):
    "import-masks on a damaged mask PNG advised installing an imageio plugin (pyav)."
    from accords_tem.import_masks import MaskError, read_mask
    (tmp_path/'m.png').write_text('broken')
    with pytest.raises(MaskError, match=r"m\.png: not a PNG file: it starts with b'broken' \(text\)"): read_mask(tmp_path/'m.png')
    (tmp_path/'e.tif').write_bytes(b'')
    with pytest.raises(MaskError, match=r'e\.tif: the file is empty'): read_mask(tmp_path/'e.tif')


@pytest.mark.parametrize('cmd', [['predict', '--model', 'M', '--images', 'I'], ['classify', '--model', 'M', '--images', 'I'],
                                 ['import-masks', '--images', 'I', '--masks', 'K'], ['cv-unet']])
def test_other_commands_into_a_busy_folder_are_refused(tmp_path, cmd):
    "Two `predict` into one folder at once ran side by side (failures.csv rows doubled); so did classify, import-masks, cv-unet."
    import socket
    from accords_tem.cli import _out_folder
    out = tmp_path/'out'; out.mkdir()
    assert _out_folder([*cmd, '--out', str(out)]) == str(out) and _out_folder(['inspect', 'x.tif']) is None
    other = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        (out/'.accords-tem.lock').write_text(json.dumps(dict(pid=other.pid, host=socket.gethostname(), started='now')))
        rc, _, err = _cli(*cmd, '--out', str(out))
        assert rc == 2 and f'another accords-tem (pid {other.pid}' in err, err
        assert sorted(p.name for p in out.iterdir()) == ['.accords-tem.lock']
    finally: other.kill(); other.wait()


def test_commands_run_outside_a_clone(tmp_path, monkeypatch):
    "`accords-tem synthesize` (and cv-unet) defaulted to the path configs/default.yaml: outside a clone, 'configuration file not found'."
    from accords_tem.core import config_path
    monkeypatch.chdir(tmp_path)
    rc, out, err = _cli('synthesize', '--out', 'syn', '--images-per-material', '1', '--size', '64', '--set', 'synthetic.materials=[GO_01]')
    assert rc == 0, err
    assert len(list((tmp_path/'syn').rglob('*.tif'))) >= 1
    (tmp_path/'run').mkdir(); assert config_path(None, 'run') == 'default'   # cv-unet: the run's own config, else the default
    (tmp_path/'run'/'config.yaml').write_text('seed: 3\n'); assert config_path(None, 'run') == str(Path('run')/'config.yaml')


def test_no_image_matching_the_glob_is_an_error(tmp_path):
    "PNG micrographs under the default data.image_glob '**/*.tif': an inventory of 0 images, exit 0, every later stage on nothing."
    from PIL import Image
    (tmp_path/'d'/'A').mkdir(parents=True); (tmp_path/'empty').mkdir()
    for i in range(2): Image.fromarray((np.random.default_rng(i).random((20, 20)) * 255).astype(np.uint8)).save(tmp_path/'d'/'A'/f'p{i}.png')
    rc, _, err = _cli('inventory', '--out', str(tmp_path/'run'), '--data', str(tmp_path/'d'))
    assert rc == 2 and "holds 2 .png file(s): set data.image_glob: '**/*.png'" in err, err
    assert not (tmp_path/'run'/'inventory.csv').exists()
    rc, _, err = _cli('inventory', '--out', str(tmp_path/'run'), '--data', str(tmp_path/'empty'))
    assert rc == 2 and 'no micrograph here' in err, err
    rc, _, err = _cli('inventory', '--out', str(tmp_path/'run'), '--data', str(tmp_path/'d'), '--set', "data.image_glob='**/*.png'")
    assert rc == 0 and len(pd.read_csv(tmp_path/'run'/'inventory.csv')) == 2, err


@pytest.mark.parametrize('args,msg', [(['--nm-per-px', '-1'], 'argument --nm-per-px: must be > 0, got -1'),
                                      (['--nm-per-px', '0'], 'argument --nm-per-px: must be > 0, got 0'),
                                      (['--tta-scales', '1', '-0.5'], 'argument --tta-scales: must be > 0, got -0.5'),
                                      (['--tile', '0'], 'argument --tile: must be > 0, got 0'),
                                      (['--tile', '64', '--overlap', '64'], '--overlap 64 must be smaller than --tile 64'),
                                      (['--nm-per-px', 'two'], "argument --nm-per-px: expected a number, got 'two'")])
def test_predict_refuses_impossible_numbers(tmp_path, args, msg):
    "`predict --nm-per-px -1` gave negative perimeters and Feret diameters, `--tta-scales -1` an empty prediction, exit 0."
    from accords_tem.objects import predict_main
    err = _io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        predict_main(['--model', 'M', '--images', 'I', '--out', str(tmp_path/'o'), *args])
    assert e.value.code == 2 and msg in err.getvalue(), err.getvalue()


def test_negative_calibration_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match='calibration.nm_per_px.5000'): load_config(None, {'calibration.nm_per_px': {5000: -2.0}})
    with pytest.raises(ConfigError, match='calibration.camera_pixel_nm'): load_config(None, {'calibration.camera_pixel_nm': 0})


@pytest.mark.parametrize('key,value,msg', [('unet.epochs', 0, 'unet.epochs'), ('unet.norm_std', 0, 'unet.norm_std'),
                                           ('unet.tile_overlap', 512, 'tile_overlap 512 must be smaller than tile_size 512'),
                                           ('unet.lr', -1e-3, 'unet.lr'), ('unet.augment.p', 1.5, 'unet.augment.p')])
def test_impossible_training_settings_fail_at_load(key, value, msg):
    "unet.norm_std: 0 (a division by zero), epochs 0, a negative lr or an overlap as large as the tile were accepted until deep in training."
    with pytest.raises(ConfigError, match=msg): load_config(None, {key: value})


@pytest.mark.parametrize('key,value,msg', [
    ('synthetic.camera_pixel_nm', -1, 'camera_pixel_nm.*greater than 0'), ('synthetic.probability_levels', 0, 'probability_levels'),
    ('synthetic.magnifications', [0, 1000], r'magnifications\.0'), ('synthetic.magnifications', [], 'at least 1 item'),
    ('synthetic.dose_e_per_px', [100, 10], 'low 100 is above high 10'), ('synthetic.hole_diameter_nm', [-1, 5], 'hole_diameter_nm'),
    ('masks.max_qa', -1, 'max_qa'), ('normalization.max_figures', -2, 'max_figures'), ('objects.max_overlays', -1, 'max_overlays'),
    ('pipeline.cell_timeout', 0, 'cell_timeout')])
def test_impossible_counts_and_ranges_fail_at_load(key, value, msg):
    "A negative figure count sliced off the last figure silently ([:-1]); magnification 0, a negative camera pixel or a reversed dose range failed mid-generation."
    with pytest.raises(ConfigError, match=msg): load_config(None, {key: value})


def test_a_failed_figure_leaves_no_normalized_image(tmp_path, monkeypatch):
    "normalize_file wrote the image, then its figure failed: the input was logged as failed but its image stayed for stage 03."
    import accords_tem.normalization as N
    root = tmp_path/'data'/'G'; root.mkdir(parents=True)
    _gray(root/'a_2000X_1.tif'); _gray(root/'b_2000X_2.tif', seed=1)
    def broken(img, res, name, ncfg):
        if name.startswith('b_'): raise ValueError('figure failed')
        import matplotlib.pyplot as plt
        return plt.figure()
    monkeypatch.setattr(N, 'comparison_figure', broken)
    cfg = load_config(_config(tmp_path, tmp_path/'data', normalization={'figures': True}))
    N.run_normalization(cfg, tmp_path/'run', progress=False)
    out = tmp_path/'run'/'normalized'
    assert sorted(p.name for p in out.rglob('*.png')) == ['a_2000X_1.png', 'a_2000X_1.png']   # image and figure of a only
    assert [Path(r['file']).name for r in FailureLog(tmp_path/'run', '').rows('normalization')] == ['b_2000X_2.tif']


@pytest.mark.parametrize('name', ['a/b', '.hidden', 'x\\y', ' padded', 'tab\tname'])
def test_class_names_that_cannot_be_file_names_are_refused(name, tmp_path):
    "`config init --classes a/b` wrote a configuration whose masks stage then wrote RUN/masks/a/b/ (a class 'b' inside 'a')."
    with pytest.raises(ConfigError, match='cannot name a class'):
        load_config(None, {'classes': [{'name': name, 'label': 1}, {'name': 'background', 'label': 2}]})
    from accords_tem.core import adapt_classes
    if name == name.strip():   # adapt_classes strips what is typed on a command line
        with pytest.raises(ConfigError, match='cannot name a class'): adapt_classes(load_config(None).to_dict(), [name, 'ok'])
    adapt_classes(load_config(None).to_dict(), ['carbon hole', 'GO-2.1'])          # spaces, dots and dashes are fine


def test_locked_commands_clean_what_a_killed_write_left(tmp_path, capsys):
    "A killed import-masks left .config.yaml.<random>.tmp in its --out; the next import-masks (or predict, review) kept it for ever."
    from accords_tem.core import run_lock
    (tmp_path/'dataset').mkdir()
    (tmp_path/'.config.yaml.illxhh3e.tmp').write_text('half')
    (tmp_path/'dataset'/'.qc.csv.ab12cd34.tmp').write_text('half')
    (tmp_path/'.tmpab12cd34').mkdir()
    (tmp_path/'.notes.txt').write_text('a hidden file of the user')
    with run_lock(tmp_path): pass
    assert sorted(p.name for p in tmp_path.rglob('.*')) == ['.notes.txt']
    assert 'removed 3 temporary file(s)' in capsys.readouterr().err


def test_lock_of_a_killed_unreaped_process_is_taken_over(tmp_path):
    "A process killed a moment ago (a zombie until its parent reaps it) still answered kill(pid, 0): its lock blocked the next run."
    import json, subprocess, sys, time
    from accords_tem.core import run_lock, LOCK_NAME
    p = subprocess.Popen([sys.executable, '-c', 'pass'])
    for _ in range(200):
        if Path(f'/proc/{p.pid}/stat').read_text().rsplit(')', 1)[1].split()[0] == 'Z': break
        time.sleep(0.05)
    import socket
    (tmp_path/LOCK_NAME).write_text(json.dumps(dict(pid=p.pid, host=socket.gethostname(), started='now')))
    try:
        with run_lock(tmp_path): pass
    finally: p.wait()


def test_config_init_refuses_a_data_folder_that_does_not_exist(tmp_path):
    "`config init --data /typo` wrote a configuration whose every stage then found no image."
    rc, _, err = _cli("config", "init", "--classes", "A", "--data", str(tmp_path/"typo"))
    assert rc == 2 and 'typo: --data: no such folder' in err
    rc, _, _ = _cli("config", "init", "--classes", "A", "--data", str(tmp_path))
    assert rc == 0


def test_a_failed_torchrun_rank_leaves_no_scratch_folder(tmp_path):
    "Under torchrun, ranks > 0 train into a scratch folder removed only on success: a failed run left accords-tem-rank1-* in TMPDIR."
    import subprocess, sys, os
    (tmp_path/'tmp').mkdir()
    code = ("from accords_tem.core import load_config\nfrom accords_tem.unet import run_unet\n"
            f"run_unet(load_config(None), {str(tmp_path/'run')!r}, progress=False)")   # no dataset: fails
    env = dict(os.environ, RANK='1', LOCAL_RANK='1', WORLD_SIZE='2', TMPDIR=str(tmp_path/'tmp'), HF_HUB_OFFLINE='1')
    r = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert list((tmp_path/'tmp').glob('accords-tem-rank*')) == []

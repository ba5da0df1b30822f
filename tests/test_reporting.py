"""Stage 07: quality checks on fabricated run folders with known answers, and the PDF report rendered with poppler."""
import json, shutil, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accords_tem.core import config_hash, load_config
from accords_tem.reporting import (ReportConfig, RunData, build_report, fake_run, pdf_pages, pdf_text, quality_checks, run_report)
from accords_tem.qc import check_calibration, check_contrast, check_saturation, check_unreadable, mean_iou_by_subset
from accords_tem.layout import complete, layout_problems

POPPLER = shutil.which('pdftoppm') and shutil.which('pdftotext')
needs_poppler = pytest.mark.skipif(not POPPLER, reason='pdftoppm/pdftotext not found: install poppler-utils (make sysdeps)')


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    return fake_run(tmp_path_factory.mktemp('rep')/'run')


def _folder(tmp_path, files:dict) -> Path:
    for k, v in files.items():
        (tmp_path/k).parent.mkdir(parents=True, exist_ok=True); (tmp_path/k).write_text(v)
    return tmp_path


def test_failure_row_fails_and_names_the_file(tmp_path):
    d = _folder(tmp_path, {'failures.csv': 'stage,file,error,reason,time\n'
                                           'io,GO_02/corrupt_0007.tif,ImageReadError,not a TIFF file,2026-11-24\n'})
    r = check_unreadable(RunData(d), ReportConfig())
    assert r['status'] == 'fail' and r['images'] == ['corrupt_0007.tif'] and 'corrupt_0007.tif' in r['reason']


def _sem_with_bar(seed:int, bar_value:int=0) -> np.ndarray:
    "A 12-bit SEM-like image with a 48-row data bar (uniform, white text and a scale bar) at the bottom."
    import cv2
    a = np.random.default_rng(seed).normal(2000, 300, (300, 400)).clip(1, 4000).astype(np.uint16)
    text = np.zeros(a.shape, np.uint8)
    cv2.putText(text, 'EHT = 5.00 kV   Mag = 50.00 K X', (10, 275), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    cv2.line(text, (300, 285), (380, 285), 255, 3)
    a[252:] = bar_value; a[text > 0] = 4095
    return a


@pytest.mark.parametrize('bar_value', [0, 4095])
def test_data_bars_are_not_saturation(tmp_path, bar_value):
    import tifffile
    from accords_tem.io import run_inventory
    raw = tmp_path / 'raw'; raw.mkdir()
    for i in range(4): tifffile.imwrite(raw / f'sem_{i}.tif', _sem_with_bar(i, bar_value))
    data = f'data: {{root: {raw}, image_glob: "*.tif", ground_truth: null}}\n'
    (tmp_path / 'config.yaml').write_text(data)                                               # no inventory: the raw images
    assert check_saturation(RunData(tmp_path), ReportConfig())['status'] == 'pass'          # raw images read, bars cut
    (tmp_path / 'config.yaml').write_text(data + 'io: {data_bar: none}\n')
    r = check_saturation(RunData(tmp_path), ReportConfig())
    assert r['status'] == 'fail' and len(r['images']) == 4                                    # with the bars: "clipped"
    cfg = load_config(None, {'data.root': str(raw), 'data.image_glob': '*.tif', 'data.ground_truth': None, 'io.thumbnails': 0})
    run_inventory(cfg, tmp_path / 'run')
    assert pd.read_csv(tmp_path / 'run' / 'inventory.csv')['content_bottom'].tolist() == [252] * 4
    for check in (check_saturation, check_contrast):                                          # stage 00's statistics
        assert check(RunData(tmp_path / 'run'), ReportConfig())['status'] == 'pass'


def test_missing_pixel_size_warns(tmp_path):
    complete(pd.DataFrame(dict(file=['a.tif', 'b.tif', 'c.tif'], magnification=[2000, 5000, 5000], nm_per_px=[6.9, None, 2.8],
                               pixel_size_source=['imagej', 'none', 'imagej'])), 'inventory.csv').to_csv(tmp_path/'inventory.csv', index=False)
    d = tmp_path
    r = check_calibration(RunData(d), ReportConfig())
    assert (r['status'], r['images']) == ('warn', ['b.tif'])


@pytest.mark.parametrize('metrics, expected', [   # stage 05's unet/metrics.csv: subset, reduction, cls (classes and 'mean'), iou
    (dict(subset=['val', 'val', 'test', 'test'], reduction='pooled', cls=['GFM', 'carbonhole'] * 2, iou=[0.9, 0.7, 0.8, 0.6]),
     {'val': 0.8, 'test': 0.7}),                                                             # no mean row: the classes' mean
    (dict(subset=['val', 'test'] * 2, reduction=['per_image'] * 2 + ['pooled'] * 2, cls='mean', iou=[0.5, 0.5, 0.81, 0.79]),
     {'val': 0.81, 'test': 0.79}),                                                           # the pooled reduction, not per image
])
def test_mean_iou_by_subset(metrics, expected):
    got = mean_iou_by_subset(pd.DataFrame(metrics))
    assert got.keys() == expected.keys() and all(abs(got[k] - v) < 1e-9 for k, v in expected.items())


def test_every_check_on_the_fabricated_run(run):
    assert layout_problems(run) == []
    qc = {r['check']: r for r in quality_checks(run, ReportConfig())}
    assert qc['images could not be read']['images'] == ['AC_UT_GO_02_01_UO_2000X_0099.tif']
    want = {'missing calibration': ['AC_UT_GO_02_01_UO_2000X_0004.tif'], 'saturated images': ['AC_UT_GO_02_01_UO_5000X_0002.tif'],
            'low-contrast images': ['AC_UT_GO_02_01_UO_10000X_0003.tif'], 'objects touching the border': ['AC_UT_GO_02_01_UO_2000X_0001'],
            'empty or near-empty masks': ['AC_UT_GO_02_01_UO_5000X_0005'],
            'low prediction confidence or high uncertainty': ['AC_UT_GO_02_01_UO_5000X_0005'],
            'classifier predictions below confidence': ['AC_UT_GO_02_01_UO_10000X_0006.tif'],
            'images judged unusable': ['AC_UT_GO_02_01_UO_10000X_0006.tif']}
    for k, v in want.items(): assert (qc[k]['status'], qc[k]['images']) == ('warn', v), k
    assert qc['validation-test metric gap']['status'] == 'warn' and '0.862' in qc['validation-test metric gap']['reason']
    assert qc['class under-represented in a split']['status'] == 'warn' and 'carbonhole in val' in qc['class under-represented in a split']['reason']
    assert qc['class overlap']['status'] == 'pass'
    saved = json.loads((run/'qc.json').read_text())
    assert saved['summary']['fail'] == 1 and len(saved['checks']) == len(qc)


def test_empty_run_folder_says_not_run(tmp_path):
    qc = quality_checks(tmp_path, ReportConfig())
    assert {r['status'] for r in qc if r['check'] not in ('images could not be read', 'stages completed')} == {'skip'}
    assert all('stage not run' in r['reason'] for r in qc if r['status'] == 'skip')


@needs_poppler
def test_report_pages_and_numbers(run, tmp_path):
    cfg = load_config(run/'config.yaml')
    config_hash(cfg)                    # imports every stage module once (torch, fastai, ...): not the report's time
    t0 = time.time()
    s = run_report(cfg, run)
    pdf = Path(s['report'])
    assert pdf.exists() and (run/'qc.json').exists() and s['fail'] == 1
    pages = pdf_pages(pdf, tmp_path/'pages', dpi=40)
    assert len(pages) >= 8
    from PIL import Image
    stds = [np.asarray(Image.open(p).convert('L'), float).std() for p in pages]
    assert min(stds) > 3, f'blank page(s): {[i + 1 for i, v in enumerate(stds) if v <= 3]}'
    txt = pdf_text(pdf)
    for number in ['0.9012', '0.6777', '0.8412', '0.8333', 'AC_UT_GO_02_01_UO_2000X_0099.tif', 'not a TIFF file',
                   'Flagged: AC_UT_GO_02_01_UO_5000X_0005', 'accords-tem run report']:
        assert number in txt, number
    assert 'could not be drawn' not in txt
    assert time.time() - t0 < 30


@needs_poppler
def test_report_of_an_empty_run(tmp_path):
    pdf = build_report(tmp_path, ReportConfig())
    txt = pdf_text(pdf)
    assert txt.count('Stage not run') >= 6 and 'could not be drawn' not in txt
    assert not list(tmp_path.glob('.*.tmp*'))          # nothing half-written left behind


@needs_poppler
def test_damaged_files_do_not_break_the_report(tmp_path):
    run = fake_run(tmp_path/'run')
    (run/'dataset'/'pixel_distribution.png').write_bytes(b'\x89PNG\r\n\x1a\n broken')   # truncated figure
    (run/'unet'/'metrics.csv').write_text('what,ever\n1,2\n')                            # unexpected columns
    (run/'objects'/'objects.csv').write_text('')                                        # empty file
    (run/'classifier'/'predictions.csv').write_text('image\nx.tif\n')                   # no probabilities
    (run/'inventory.csv').write_text('file\n' + 'x' * 50 + '.tif\n')                    # no pixel size column
    qc = {r['check']: r for r in quality_checks(run, ReportConfig())}
    assert qc['validation-test metric gap']['status'] == 'warn' and qc['objects touching the border']['status'] == 'skip'
    clf = qc['classifier predictions below confidence']                                    # a table without its columns: said so
    assert clf['status'] == 'warn' and 'classifier/predictions.csv' in clf['reason'] and "lacks the column(s) ['filename', 'path']" in clf['reason']
    txt = pdf_text(build_report(run, ReportConfig(), qc=list(qc.values())))
    assert 'pixel_distribution.png could not be read' in txt and 'Quality checks' in txt and 'Failures' in txt
    assert 'unet/metrics.csv' in txt and 'lacks the column' in txt                        # the damaged table, named

"""Tests of stage 04 (accords_tem.classifier): label sheets, rules, model shapes, weights, loss, save/load, the stage."""
import json
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import tifffile
import torch
import torch.nn.functional as F

from accords_tem.core import CheckpointMissingError, ConfigError, LabelSheetError, load_config
from accords_tem.training import lite0_weights_file
from accords_tem.classifier import (DEFAULT_TASKS, NOT_ASSESSABLE, ClassifierBundle, ClassifierConfig, NormStats,
                                    TEMClassifier, assessable_mask, classify_main, encode_targets, find_sheets,
                                    load_labels, load_pretrained, masked_multitask_loss, match_value,
                                    multitask_split, pretrained_file, read_sheet, run_classifier)
from accords_tem.layout import layout_problems

@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    "One torch thread: far faster on a shared CPU (restored after this module)."
    old = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


HEADER = ['filename', 'Image Type', 'Num_particles', 'Num_materials', 'Morphology', 'Nanostructures', 'Usability']


def _img(path, bright, size=40, seed=0):
    rng = np.random.default_rng(seed)
    tifffile.imwrite(path, (rng.normal(0.7 if bright else 0.3, 0.05, (size, size)) * 60000).clip(0, 65535).astype(np.uint16))


def _rows(mat, folder, n=8):
    rows = [HEADER]
    for i in range(n):
        mag = (2000, 20000)[i % 2]
        name = f'AC_UT_{mat}_01_UO_{mag}X_{i:04d}.tif'
        many = i % 3 == 0
        _img(folder/name, many, seed=i)
        rows.append([name, 'BF', 'Many (>10)' if many else 'One', 'One',
                     'Thin crumpled with many folds and kinks' if many else 'Thick flat rigid', 'No', 'Yes' if many else 'No'])
    return rows


@pytest.fixture
def sample(tmp_path):
    "Two material folders: GO_02 with a ';' CSV (typo, NA, empty cell, missing image, image without row), G_04 with an .xlsm."
    root = tmp_path/'data'
    (root/'GO_02').mkdir(parents=True); (root/'G_04').mkdir()
    rows = _rows('GO_02', root/'GO_02')
    rows[2][4] = 'Thin flat or wavy with few knks'   # typo
    rows[3][5] = 'NA'
    rows[4][6] = ''                                  # empty: missing label
    rows.append(['AC_UT_GO_02_01_UO_2000X_0099.tif', 'BF', 'One', 'One', 'Other', 'No', 'Yes'])  # no such file
    _img(root/'GO_02'/'AC_UT_GO_02_01_UO_5000X_0100.tif', False)                                  # no row
    (root/'GO_02'/'GO_02_labels.csv').write_text('\n'.join(';'.join(r) for r in rows) + '\n', encoding='utf-8')
    wb = openpyxl.Workbook(); ws = wb.active
    for r in _rows('G_04', root/'G_04'): ws.append(r)
    wb.save(root/'G_04'/'G_04_labels.xlsm')
    return root


@pytest.mark.parametrize('sep', [',', ';', '\t', '|'])
def test_read_sheet_delimiters(tmp_path, sep):
    p = tmp_path/'x_labels.csv'
    p.write_text(sep.join(['filename', 'Num particles', 'Usability']) + '\n' + sep.join(['a.tif', 'NA', 'Yes']) + '\n'
                 + sep.join(['b.tif', '', 'No']) + '\n', encoding='utf-8-sig')
    df = read_sheet(p)
    assert df['filename'].tolist() == ['a.tif', 'b.tif']
    assert df['Num particles'].tolist() == ['NA', None]          # 'NA' is an answer, an empty cell is missing
    assert df['_row'].tolist() == [2, 3]


@pytest.mark.parametrize('suffix', ['.xlsx', '.xlsm'])
def test_read_sheet_excel(tmp_path, suffix):
    wb = openpyxl.Workbook(); wb.active.title = 'cover'
    ws = wb.create_sheet('labels')
    for r in [['Filename', 'Usability'], ['a.tif', 'Yes'], [None, None], ['b.tif', 'NA']]: ws.append(r)
    wb.save(tmp_path/f'x{suffix}')
    df = read_sheet(tmp_path/f'x{suffix}')
    assert df['Usability'].tolist() == ['Yes', 'NA']
    assert df['_row'].tolist() == [2, 4]


def test_read_sheet_errors(tmp_path):
    (tmp_path/'a.csv').write_text('name,Usability\na.tif,Yes\n')
    with pytest.raises(LabelSheetError, match="no 'filename' column"): read_sheet(tmp_path/'a.csv')
    (tmp_path/'b.ods').write_text('x')
    with pytest.raises(LabelSheetError, match='unsupported'): read_sheet(tmp_path/'b.ods')
    (tmp_path/'c.xlsx').write_text('not a workbook')
    with pytest.raises(LabelSheetError, match='cannot be parsed'): read_sheet(tmp_path/'c.xlsx')


def test_match_value_typos():
    v = DEFAULT_TASKS['Morphology']
    assert match_value('thin  FLAT or wavy with few kinks', v)[:2] == ('Thin flat or wavy with few kinks', 'matched')
    assert match_value('Thin flat or wavy with few knks', v) == (None, 'unmatched', 'Thin flat or wavy with few kinks')
    assert match_value('Thin flat or wavy with few knks', v, {'Thin flat or wavy with few knks': 'Thin flat or wavy with few kinks'})[1] == 'mapped'
    assert match_value('thick flat rigid', v, ignore_case=False)[1] == 'unmatched'
    assert match_value('', v) == (None, 'empty', None)


def test_load_labels(sample):
    sheets = find_sheets(sample)
    assert [s.name for s in sheets] == ['GO_02_labels.csv', 'G_04_labels.xlsm']
    ls = load_labels(sheets)
    assert len(ls.table) == 16 and set(ls.table.material) == {'GO_02', 'G_04'}
    kinds = ls.issues.kind.value_counts().to_dict()
    assert kinds == {'unmatched': 1, 'missing_image': 1, 'unlabelled_image': 1}
    assert ls.table.Morphology.isna().sum() == 1                 # the typo: reported, not a label
    assert [p.name for p in ls.unlabelled] == ['AC_UT_GO_02_01_UO_5000X_0100.tif']
    rep = ls.report().set_index('column')
    assert rep.loc['Morphology', 'unmatched'] == 1
    assert 'few kinks' in rep.loc['Morphology', 'suggestions']
    assert rep.loc['Usability', 'empty'] == 1
    assert rep.loc['filename', 'missing_images'] == 1 and rep.loc['filename', 'images_without_labels'] == 1
    ls2 = load_labels(sheets, ClassifierConfig(value_map={'Thin flat or wavy with few knks': 'Thin flat or wavy with few kinks'}))
    assert ls2.table.Morphology.isna().sum() == 0
    assert ls2.report().set_index('column').loc['Morphology', 'mapped'] == 1


def test_rules_mask_and_targets(sample):
    tasks = list(DEFAULT_TASKS)
    rules = ClassifierConfig().rules
    m = assessable_mask([2000, 1500, 2500, None], tasks, rules)
    assert m[0].tolist() == [True] + [False] * 5 and m[1].tolist() == m[0].tolist()
    assert m[2].all() and m[3].all()
    ls = load_labels(find_sheets(sample))
    y = encode_targets(ls.table, DEFAULT_TASKS, rules)
    at2000 = (ls.table.magnification == 2000).to_numpy()
    assert (y[at2000, 1:] == -1).all() and (y[at2000, 0] >= 0).all()
    assert (encode_targets(ls.table, DEFAULT_TASKS)[at2000, 1:] >= 0).any()   # without rules they are labels


def test_split_stratified_jointly():
    rng = np.random.default_rng(0)
    y = np.stack([rng.integers(0, 3, 60), (np.arange(60) % 6 == 0).astype(int)], 1)
    tr, va = multitask_split(y, [3, 2], 0.25, seed=3)
    assert not set(tr) & set(va) and len(tr) + len(va) == 60
    assert y[va, 1].sum() in (2, 3) and y[tr, 1].sum() >= 7     # the rare answer on both sides


@pytest.mark.parametrize('backbone', ['resnet18', 'tf_efficientnet_lite0'])
@pytest.mark.parametrize('use_mag', [True, False])
def test_output_shapes(backbone, use_mag):
    nc = [len(v) for v in DEFAULT_TASKS.values()]
    net = TEMClassifier(backbone, nc, use_magnification=use_mag).eval()
    x = torch.randn(2, 1, 64, 64)
    for out in (net(x, torch.randn(2, 1)), net(x)):
        assert [tuple(o.shape) for o in out] == [(2, c) for c in nc]
    assert (net.meta is not None) == use_mag


def test_lite0_pretrained_keys_verified():
    p = lite0_weights_file()
    net = TEMClassifier('efficientnet_lite0', [2])
    info = load_pretrained(net.encoder, p)
    raw = torch.load(p, map_location='cpu', weights_only=True)
    assert info['in_chans'] == 1
    assert torch.allclose(net.encoder.conv_stem.weight[:, 0], raw['_conv_stem.weight'].sum(1))
    assert torch.equal(net.encoder.bn2.running_var, raw['_bn1.running_var'])
    wrong = TEMClassifier('resnet18', [2])
    with pytest.raises(CheckpointMissingError, match='does not fit|tensors'):
        load_pretrained(wrong.encoder, p)


def test_checkpoint_missing(tmp_path):
    with pytest.raises(CheckpointMissingError, match='classifier.weights.resnet34'):
        pretrained_file('resnet34', {'resnet34': str(tmp_path/'r34.pth')})


def test_masked_loss_ignores_missing():
    torch.manual_seed(0)
    preds = (torch.randn(4, 3), torch.randn(4, 2))
    y = torch.tensor([[0, 1], [2, -1], [-1, -1], [1, 0]])
    ref = (F.cross_entropy(preds[0][[0, 1, 3]], y[[0, 1, 3], 0]) + F.cross_entropy(preds[1][[0, 3]], y[[0, 3], 1])) / 2
    assert torch.allclose(masked_multitask_loss(preds, y), ref)
    other = (preds[0].clone(), preds[1].clone()); other[0][2] = 99.; other[1][1:3] = -99.
    assert torch.allclose(masked_multitask_loss(other, y), ref)
    assert masked_multitask_loss(preds, torch.full((4, 2), -1)).item() == 0.0


def test_save_load_round_trip(tmp_path):
    st = NormStats(64, (0.5, 99.5), 0.45, 0.21, 3.9, 0.4)
    b = ClassifierBundle.create('resnet18', DEFAULT_TASKS, st, ClassifierConfig(image_size=64, pretrained=False, threads=1))
    imgs = [np.random.default_rng(i).integers(0, 4000, (70, 90)).astype(np.uint16) for i in range(4)]
    mags = [2000, 20000, None, 50000]
    p1 = b.predict(imgs, mags)
    b.save(tmp_path/'m')
    b2 = ClassifierBundle.load(tmp_path/'m')
    pd.testing.assert_frame_equal(p1, b2.predict(imgs, mags))
    assert b2.stats == st and b2.tasks == DEFAULT_TASKS and b2.backbone == 'resnet18'
    assert p1.loc[0, 'Usability'] == NOT_ASSESSABLE and np.isnan(p1.loc[0, 'Usability_prob'])
    assert list(p1.columns[:2]) == ['Num_particles', 'Num_particles_prob']


def test_config_section():
    with pytest.raises(ConfigError, match='classifier.epoch'):
        load_config(None, {'classifier.epoch': 3}).section('classifier')
    cfg = load_config(Path(__file__).parent.parent/'configs'/'demo.yaml')
    c = cfg.section('classifier')
    assert c.tasks == DEFAULT_TASKS and c.backbones == ['tf_efficientnet_lite0']


def test_killed_rerun_is_not_up_to_date_and_a_replaced_image_is_stale(sample, tmp_path, monkeypatch):
    "Issue 18: a re-run killed after new weights are written must not resume as up to date; inputs count by content."
    import os, tifffile
    from accords_tem import classifier
    cfg = load_config(None, {'data.root': str(sample), 'device': 'cpu', 'classifier.backbones': ['resnet18'],
                             'classifier.pretrained': False, 'classifier.image_size': 32,
                             'classifier.epochs': 1, 'classifier.batch_size': 4, 'classifier.progress': False,
                             'classifier.thumbnail_size': 64, 'classifier.threads': 1})
    run = tmp_path/'run'
    run_classifier(cfg, run)
    assert run_classifier(cfg, run)['skipped']
    metrics_table = classifier.metrics_table
    def killed(*a, **k): raise KeyboardInterrupt    # after bundle.save (new weights), before metrics.csv and summary.json
    monkeypatch.setattr(classifier, 'metrics_table', killed)
    with pytest.raises(KeyboardInterrupt): run_classifier(cfg, run, force=True)
    monkeypatch.setattr(classifier, 'metrics_table', metrics_table)
    assert not (run/'classifier'/'summary.json').exists()
    assert not run_classifier(cfg, run)['skipped']
    img = next((sample/'G_04').glob('*.tif')); st = img.stat()
    tifffile.imwrite(img, 255 - tifffile.imread(img)); os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    assert not run_classifier(cfg, run)['skipped']                            # replaced with an older mtime: stale


def test_run_classifier_and_cli(sample, tmp_path):
    import timm
    torch.save(timm.create_model('resnet18').state_dict(), tmp_path/'r18.pth')     # an ImageNet-format checkpoint
    cfg = load_config(None, {'data.root': str(sample), 'device': 'cpu', 'classifier.backbones': ['resnet18', 'resnet34'],
                             'classifier.weights': {'resnet18': str(tmp_path/'r18.pth'), 'resnet34': str(tmp_path/'no.pth')},
                             'classifier.image_size': 40, 'classifier.epochs': 1, 'classifier.batch_size': 4,
                             'classifier.progress': False, 'classifier.thumbnail_size': 64, 'classifier.threads': 1})
    run = tmp_path/'run'
    s = run_classifier(cfg, run)
    assert layout_problems(run) == []
    out = run/'classifier'
    for f in ('model/bundle.json', 'model/model.pth', 'metrics.csv', 'predictions.csv', 'validation_report.csv',
              'label_issues.csv', 'confusion_resnet18.png', 'metrics.png', 'summary.json'):
        assert (out/f).exists(), f
    m = pd.read_csv(out/'metrics.csv')
    assert m.task.tolist() == list(DEFAULT_TASKS) + ['average'] and 'resnet18_macro_f1' in m.columns
    pr = pd.read_csv(out/'predictions.csv')
    assert len(pr) == 17 and set(pr.split) == {'train', 'valid', 'unlabelled'}
    assert len(list((out/'thumbnails').glob('*.png'))) == 17
    fails = pd.read_csv(run/'failures.csv')
    assert 'AC_UT_GO_02_01_UO_2000X_0099.tif' in ' '.join(fails.file)        # the missing image is recorded
    assert 'backbone resnet34' in fails.file.tolist()                        # its weights are missing: skipped
    assert json.loads((out/'model'/'bundle.json').read_text())['info']['pretrained'].endswith('r18.pth')
    assert s['n_labelled'] == 16 and not s['skipped']
    assert run_classifier(cfg, run)['skipped']                               # resumable
    assert classify_main(['--model', str(out/'model'), '--images', str(sample/'G_04'), '--out', str(tmp_path/'cls')]) == 0
    assert len(pd.read_csv(tmp_path/'cls'/'predictions.csv')) == 8 and (tmp_path/'cls'/'thumbnails').is_dir()
    with pytest.raises(CheckpointMissingError, match='bundle.json'):
        classify_main(['--model', str(tmp_path), '--images', str(sample/'G_04'), '--out', str(tmp_path/'cls2')])

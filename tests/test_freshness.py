"""Freshness by content and stages marked done only when complete (issue 18, items 1-2; issue 17, item 2).

A replaced input whose modification time is older (`cp -p`, a restore, a sync tool) must make the outputs made
from it stale in every stage with per-file resume; touching a file (same bytes) must not. A killed or failed
(re-)run must leave the stage not done."""
import json, os, shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from accords_tem.core import InputRecord, file_digests, load_config
from accords_tem.io import run_inventory, write_ilastik_h5
from accords_tem.normalization import run_normalization
from accords_tem.masks import run_masks
from accords_tem import pipeline


def _replace_keep_old_mtime(path:Path, write):
    "Put other bytes in `path`, then set its mtime back before the old one (what `cp -p` of an older file does)."
    st = path.stat()
    write(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))


def _images(root:Path) -> Path:
    (root/'G').mkdir(parents=True)
    tifffile.imwrite(root/'G'/'a.tif', np.tile(np.arange(32, dtype=np.uint8) * 8, (24, 1)))
    tifffile.imwrite(root/'G'/'b.tif', np.tile(np.arange(24, dtype=np.uint8)[:, None] * 9, (1, 32)))   # not blank (io.check_not_blank)
    return root


def _cfg(root:Path, **kw):
    return load_config(None, {'data.root': str(root), 'data.ground_truth': None, 'io.thumbnails': 0, **kw})


# ---------------------------------------------------------------- core
def test_file_digests_see_content_not_mtime(tmp_path):
    a = tmp_path/'a.tif'; a.write_bytes(b'first image')
    before = file_digests([a])
    os.utime(a, (1, 1))
    assert file_digests([a], before)[str(a)][0] == before[str(a)][0]
    _replace_keep_old_mtime(a, lambda p: p.write_bytes(b'other image'))     # same size, older mtime
    assert file_digests([a], before)[str(a)][0] != before[str(a)][0]


def test_input_record_drops_a_group_before_it_is_rewritten(tmp_path):
    i, o = tmp_path/'in.tif', tmp_path/'out'/'x.png'
    i.write_bytes(b'one'); o.parent.mkdir(); o.write_bytes(b'made from one')
    InputRecord(tmp_path/'out'/'inputs.jsonl', 'k').done([o], [i])
    assert InputRecord(tmp_path/'out'/'inputs.jsonl', 'k').fresh([o], [i])
    assert not InputRecord(tmp_path/'out'/'inputs.jsonl', 'k').fresh([o], [i], force=True)   # a forced re-run begins ...
    assert not InputRecord(tmp_path/'out'/'inputs.jsonl', 'k').fresh([o], [i])               # ... and is killed: not fresh


# ---------------------------------------------------------------- stages with per-file resume
def test_inventory_sees_a_replaced_image_with_an_older_mtime(tmp_path):
    root = _images(tmp_path/'data'); cfg = _cfg(root)
    run_inventory(cfg, tmp_path/'run')
    assert run_inventory(cfg, tmp_path/'run')['skipped']
    _replace_keep_old_mtime(root/'G'/'a.tif', lambda p: tifffile.imwrite(p, np.zeros((40, 50), np.uint16)))
    s = run_inventory(cfg, tmp_path/'run')
    assert not s['skipped']
    row = pd.read_csv(tmp_path/'run'/'inventory.csv').set_index('file').loc['G/a.tif']
    assert (row['width'], row['height'], row['dtype']) == (50, 40, 'uint16')
    os.utime(root/'G'/'a.tif', None)                                        # touched: same bytes, nothing to do
    assert run_inventory(cfg, tmp_path/'run')['skipped']


def test_normalization_redoes_exactly_the_replaced_image(tmp_path):
    root = _images(tmp_path/'data'); cfg = _cfg(root, **{'normalization.figures': False})
    run = tmp_path/'run'
    assert run_normalization(cfg, run, progress=False)['written'] == 2
    out = run/'normalized'/'G'/'a.png'
    old = out.read_bytes()
    _replace_keep_old_mtime(root/'G'/'a.tif', lambda p: tifffile.imwrite(p, np.tile(np.arange(32, dtype=np.uint8)[::-1] * 8, (24, 1))))
    s = run_normalization(cfg, run, progress=False)
    assert (s['written'], s['skipped']) == (1, 1)
    assert out.read_bytes() != old
    os.utime(root/'G'/'b.tif', None)                                        # touched: fresh
    s = run_normalization(cfg, run, progress=False)
    assert (s['written'], s['skipped']) == (0, 2)



def test_stage_records_count_the_code(tmp_path, monkeypatch):
    "A code change makes a stage's per-file outputs stale, as it makes the pipeline's fingerprint (one code digest for both)."
    import accords_tem.core as core
    root = _images(tmp_path/'data'); cfg = _cfg(root, **{'normalization.figures': False})
    run = tmp_path/'run'
    assert run_normalization(cfg, run, progress=False)['written'] == 2
    assert run_normalization(cfg, run, progress=False)['skipped'] == 2
    real = core.module_code('normalization')
    monkeypatch.setattr(core, 'module_code', lambda m: dict(real, source='0' * 64) if m == 'normalization' else real)
    s = run_normalization(cfg, run, progress=False)
    assert (s['written'], s['skipped']) == (2, 0)                           # new code: every image redone
    assert run_normalization(cfg, run, progress=False)['skipped'] == 2

def test_masks_redo_a_replaced_export_with_an_older_mtime(tmp_path):
    root = tmp_path/'data'; (root/'G').mkdir(parents=True)
    tifffile.imwrite(root/'G'/'a.tif', np.zeros((30, 30), np.uint8))
    prob = np.zeros((30, 30, 3), np.float32); prob[..., 0] = 0.9; prob[..., 1] = 0.05; prob[..., 2] = 0.05
    write_ilastik_h5(root/'a_Probabilities.h5', prob)
    cfg = _cfg(root, **{'masks.classes': ['GFM'], 'masks.qa': False})
    run = tmp_path/'run'
    run_masks(cfg, run, progress=False)
    assert np.load(run/'masks'/'GFM'/'a.npy').all()
    assert run_masks(cfg, run, progress=False)['skipped'] == 1
    flipped = prob[..., [1, 0, 2]]
    _replace_keep_old_mtime(root/'a_Probabilities.h5', lambda p: (p.unlink(), write_ilastik_h5(p, flipped)))
    s = run_masks(cfg, run, progress=False)
    assert (s['written'], s['skipped']) == (1, 0)
    assert not np.load(run/'masks'/'GFM'/'a.npy').any()


def test_masks_of_a_failed_image_are_removed(tmp_path):
    "The ground truth's shape was checked after the masks were written: the image was logged as failed, its masks stayed."
    root = tmp_path/'data'; (root/'G').mkdir(parents=True); (root/'gt').mkdir()
    prob = np.zeros((30, 30, 3), np.float32); prob[..., 0] = 0.9; prob[..., 1] = 0.05; prob[..., 2] = 0.05
    for s in 'ab':
        tifffile.imwrite(root/'G'/f'{s}.tif', np.zeros((30, 30), np.uint8)); write_ilastik_h5(root/f'{s}_Probabilities.h5', prob)
    from PIL import Image
    Image.fromarray(np.ones((30, 30), np.uint8)).save(root/'gt'/'a_classes.png')
    Image.fromarray(np.ones((20, 30), np.uint8)).save(root/'gt'/'b_classes.png')   # not the image's shape
    cfg = _cfg(root, **{'masks.classes': ['GFM'], 'masks.qa': False, 'data.ground_truth': 'gt'})
    run = tmp_path/'run'
    assert run_masks(cfg, run, progress=False)['written'] == 1
    assert sorted(p.name for p in (run/'masks'/'GFM').iterdir()) == ['a.npy', 'a.png']
    rows = pd.read_csv(run/'failures.csv')
    assert len(rows) == 1 and 'b_Probabilities.h5' in rows.file[0] and 'ground truth is (20, 30)' in rows.reason[0]


# ---------------------------------------------------------------- stages trained as a whole
@pytest.mark.slow
def test_unet_killed_after_new_weights_is_not_up_to_date(tmp_path, monkeypatch):
    from accords_tem import unet
    unet.write_toy_dataset(tmp_path, n=6, size=64)
    tiny = dict(encoder='resnet18', encoder_weights=None, decoder_channels=[32, 16, 8], batch_size=4, patch_size=64, stride=64,
                tile_size=64, tile_overlap=32, epochs=1, min_steps=0, max_figures=0, predict_run_images=False,
                instance_classes=[], synthetic_per_material=0, train_scale_copies=[], tta_scales=[1.0])
    cfg = load_config(None, {f'unet.{k}': v for k, v in tiny.items()})
    unet.run_unet(cfg, tmp_path, progress=False)
    assert unet.run_unet(cfg, tmp_path, progress=False)['skipped']
    metric_tables = unet.metric_tables
    def killed(*a, **k): raise KeyboardInterrupt   # after save_model, before metrics.csv and summary.json
    monkeypatch.setattr(unet, 'metric_tables', killed)
    with pytest.raises(KeyboardInterrupt): unet.run_unet(cfg, tmp_path, force=True, progress=False)
    monkeypatch.setattr(unet, 'metric_tables', metric_tables)
    assert not (tmp_path/'unet'/'summary.json').exists()
    assert not unet.run_unet(cfg, tmp_path, progress=False).get('skipped')


# ---------------------------------------------------------------- the pipeline
@pytest.fixture
def one_stage(tmp_path, monkeypatch):
    "A run of stage 00 only, with papermill replaced by a function the test chooses."
    nbs = tmp_path/'nbs'; nbs.mkdir()
    shutil.copy(Path(pipeline.__file__).parent.parent/'nbs'/'00_io.ipynb', nbs)
    monkeypatch.setenv('ACCORDS_TEM_NBS', str(nbs))
    root = _images(tmp_path/'data')
    conf = tmp_path/'conf'/'run.yaml'; conf.parent.mkdir()
    conf.write_text(f"data:\n  root: {root}\n  ground_truth: null\n")
    return dict(nbs=nbs, root=root, conf=conf, run=tmp_path/'run', stage=pipeline.STAGES[0])


def _fake_stage(monkeypatch, fail=None):
    def execute(stage, run_dir, nbs, force=False, pcfg=None, extra_parameters=None):
        (run_dir/'inventory.csv').write_text('new outputs\n')
        if fail: raise fail
    monkeypatch.setattr(pipeline, 'execute_stage', execute)


def _done(o):
    cfg = load_config(o['run']/'config.yaml')
    return pipeline.stage_is_done(o['stage'], cfg, o['run'], o['nbs'])


@pytest.mark.parametrize('fail', [KeyboardInterrupt(), pipeline.StageFailed('boom')])
def test_killed_or_failed_rerun_leaves_the_stage_not_done(one_stage, monkeypatch, fail):
    o = one_stage
    _fake_stage(monkeypatch)
    assert pipeline.run_pipeline(o['conf'], o['run'], verbose=False)['stages'][0]['status'] == 'done'
    assert _done(o)
    _fake_stage(monkeypatch, fail)
    try: pipeline.run_pipeline(o['conf'], o['run'], force=True, verbose=False)
    except KeyboardInterrupt: pass
    assert not _done(o)
    _fake_stage(monkeypatch)
    assert pipeline.run_pipeline(o['conf'], o['run'], verbose=False)['stages'][0]['status'] == 'done'   # run again, not skipped


def test_fingerprint_counts_content_and_code_not_prose_or_places(one_stage, monkeypatch):
    o = one_stage
    _fake_stage(monkeypatch)
    pipeline.run_pipeline(o['conf'], o['run'], verbose=False)
    assert _done(o)
    nb_path = o['nbs']/'00_io.ipynb'; nb = json.loads(nb_path.read_text())
    md = next(c for c in nb['cells'] if c['cell_type'] == 'markdown')
    md['source'] = ['A typo fixed in the prose.\n'] + md['source']
    code = next(c for c in nb['cells'] if c['cell_type'] == 'code')
    code['outputs'] = [dict(output_type='stream', name='stdout', text=['re-executed\n'])]; code['execution_count'] = 7
    test = next(c for c in nb['cells'] if c['cell_type'] == 'code' and 'test_eq' in ''.join(c['source']))
    test['source'] = ''.join(test['source']) + '\nassert True'                # a test cell, which a run does not execute
    nb_path.write_text(json.dumps(nb))
    assert _done(o)                                                          # prose, outputs and tests do not count
    moved = o['conf'].parent.parent/'elsewhere'/'run.yaml'; moved.parent.mkdir(); shutil.copy(o['conf'], moved)
    pipeline.prepare_run(load_config(moved), o['run'])                      # the same config from another place
    assert _done(o)
    os.utime(o['root']/'G'/'a.tif', None)                                   # touched: same bytes
    assert _done(o)
    _replace_keep_old_mtime(o['root']/'G'/'a.tif', lambda p: tifffile.imwrite(p, np.zeros((5, 5), np.uint8)))
    assert not _done(o)                                                      # input content changed, mtime older


def test_fingerprint_changes_with_code_and_config(one_stage, monkeypatch):
    o = one_stage
    _fake_stage(monkeypatch)
    pipeline.run_pipeline(o['conf'], o['run'], verbose=False)
    assert _done(o)
    import accords_tem
    version = accords_tem.__version__
    monkeypatch.setattr(accords_tem, '__version__', version + '.post1')
    assert not _done(o)                                                      # another package version
    monkeypatch.setattr(accords_tem, '__version__', version)
    assert _done(o)
    nb_path = o['nbs']/'00_io.ipynb'; nb = json.loads(nb_path.read_text())
    code = [c for c in nb['cells'] if c['cell_type'] == 'code'][-1]
    code['source'] = ''.join(code['source']) + '\nprint(1)'
    nb_path.write_text(json.dumps(nb))
    assert not _done(o)                                                      # the notebook's code changed
    pipeline.run_pipeline(o['conf'], o['run'], verbose=False)
    assert _done(o)
    o['conf'].write_text(o['conf'].read_text() + "io:\n  thumbnails: 3\n")
    pipeline.prepare_run(load_config(o['conf']), o['run'])
    assert not _done(o)                                                      # the stage's section changed

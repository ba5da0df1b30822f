"""The correction loop (10_review): the whole loop on a toy run through the commands: train, review (queue, figure,
ilastik export), a corrected label file, `round` (import, fine-tune from the saved model, rounds/r0 and r1)."""
import json, shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accords_tem.cli import main
from accords_tem.core import load_config, prepare_run
from accords_tem.io import read_ilastik_h5, write_ilastik_h5
from accords_tem.seg_data import load_mask
from accords_tem import review, unet

TINY = {'unet.encoder': 'resnet18', 'unet.encoder_weights': None, 'unet.decoder_channels': [16, 8, 8], 'unet.epochs': 1,
        'unet.batch_size': 4, 'unet.patch_size': 32, 'unet.stride': 32, 'unet.tile_size': 64, 'unet.tile_overlap': 0,
        'unet.max_figures': 0, 'unet.tta': 'flips', 'unet.tta_scales': [1.0], 'unet.tta_scale_candidates': [], 'unet.threads': 1, 'unet.instance_classes': [],
        'unet.split': [0.5, 0.25, 0.25], 'unet.min_steps': 0, 'unet.synthetic_per_material': 0, 'unet.train_scale_copies': [], 'postprocessing.opening_radius': 0, 'data.ground_truth': None, 'data.image_glob': '**/*.tif'}


def toy_run(tmp_path):
    "A run trained on the toy dataset, with six more toy micrographs under data.root that it predicts."
    import tifffile
    from PIL import Image
    run = tmp_path/'run'
    unet.write_toy_dataset(run, n=6, size=64)
    src = unet.write_toy_dataset(tmp_path/'more', n=6, size=64, seed=1)
    (tmp_path/'data').mkdir()
    for p in sorted((src/'images').glob('*.png')): tifffile.imwrite(tmp_path/'data'/f'new_{p.stem}.tif', np.asarray(Image.open(p)))
    cfg = load_config(None, {**TINY, 'data.root': str(tmp_path/'data')})
    prepare_run(cfg, run)
    return run, load_config(run/'config.yaml')


def test_loop_through_the_commands(tmp_path):
    run, cfg = toy_run(tmp_path)
    assert main(['train-unet', '--out', str(run)]) == 0
    assert len(list((run/'unet'/'predict'/'uncertainty').glob('*.npy'))) == 6        # every micrograph under data.root
    assert main(['review', str(run), '--export', '2', '--top', '3']) == 0
    q = pd.read_csv(run/'review'/'queue.csv')
    assert len(q) == 6 and q['rank'].tolist() == list(range(1, 7)) and q.image.str.startswith('new_').all()   # labelled images left out
    assert q.score.is_monotonic_decreasing and q.novelty.notna().all() and (run/'review'/'queue.png').exists()
    first = q.image[0]
    lab = read_ilastik_h5(run/'review'/'ilastik'/f'{first}_Labels.h5', axes='yx').copy()
    lab[:16, :16] = 2                                                                    # the corrector draws a carbon hole
    write_ilastik_h5(tmp_path/'fixed'/f'{first}_Labels.h5', lab[..., None], axes='yxc')
    saved = run/'unet'/'model'/'model.safetensors'
    before = saved.read_bytes()
    assert main(['round', str(run), '--corrections', str(tmp_path/'fixed'), '--epochs', '1']) == 0
    assert saved.read_bytes() != before                                                  # fine-tuned
    for f in ('r0/model/model.safetensors', 'r0/round.json', 'r1/model/model.safetensors', 'r1/metrics.csv', 'r1/split.csv',
              'r1/corrected.csv', f'r1/corrected/{first}_Labels.h5', 'history.csv'):
        assert (run/'rounds'/f).exists(), f
    assert (run/'rounds'/'r0'/'model'/'model.safetensors').read_bytes() == before       # r0: the model before any correction
    h = pd.read_csv(run/'rounds'/'history.csv')
    assert h['round'].tolist() == [0, 1] and h.images_corrected.tolist() == [0, 1] and h.dataset_images.tolist() == [6, 7]
    sp = pd.read_csv(run/'rounds'/'r1'/'split.csv'); old = pd.read_csv(run/'rounds'/'r0'/'split.csv')
    assert sp.set_index('image').subset[first] == 'train'                                # the corrected image is trained on
    assert sp[sp.image != first].sort_values('image').reset_index(drop=True).equals(old.sort_values('image').reset_index(drop=True))
    m = load_mask(run/'dataset'/'masks'/f'{first}.npy')
    assert (m[1, :16, :16] == 1).all()                                                   # the correction is in the dataset
    info = json.loads((run/'unet'/'model'/'unet.json').read_text())
    assert info['unet']['init'] == str(run.resolve()/'rounds'/'r0'/'model') and info['encoder_weights_report']['source'].startswith('init:')
    assert first not in set(review.rank_images(review.run_signals(run, cfg, novelty=False)).image)   # out of the next queue


def test_train_unet_init_flag(tmp_path):
    run, cfg = toy_run(tmp_path)
    assert main(['train-unet', '--out', str(run), '--set', 'unet.predict_run_images=false']) == 0
    shutil.copytree(run/'unet'/'model', tmp_path/'m')
    assert main(['train-unet', '--out', str(run), '--init', str(tmp_path/'m'), '--set', 'unet.predict_run_images=false']) == 0
    s = json.loads((run/'unet'/'summary.json').read_text())
    assert s['encoder_weights'] == f"init: {tmp_path/'m'}"


def test_round_without_model_and_bad_corrections(tmp_path):
    run, cfg = review.write_toy_review_run(tmp_path)
    with pytest.raises(Exception, match='no trained model'): review.run_round(run, tmp_path, cfg)
    (tmp_path/'empty').mkdir()
    with pytest.raises(Exception, match=r'no ilastik label files'): review.import_corrections(run, tmp_path/'empty', cfg)

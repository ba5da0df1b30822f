"""`accords-tem train-unet` under `torchrun --nproc_per_node 2` on the CPU (gloo): fastai's DDP trains, rank 0 writes the
usual unet/ layout, nothing of the other rank or of the shared work folder is left. Slow (two processes start torch)."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

SETS = dict(encoder='resnet18', encoder_weights='null', decoder_channels='[32, 16, 8]', batch_size=2, patch_size=64, stride=64,
            tile_size=64, tile_overlap=32, instance_classes='[]', synthetic_per_material=0, train_scale_copies='[]', tta_scales='[1.0]',
            tta_scale_candidates='[]', threshold_min_images=0, threshold_fallback='false', epochs=2, min_steps=0, max_figures=1,
            schedule='one_cycle', predict_run_images='false')

@pytest.mark.slow
def test_train_unet_torchrun_gloo(tmp_path):
    from accords_tem import unet
    unet.write_toy_dataset(tmp_path/'run', n=6, size=64)
    (tmp_path/'launch.py').write_text('import sys\nfrom accords_tem.cli import main\nsys.exit(main())\n')
    sets = [a for k, v in SETS.items() for a in ('--set', f'unet.{k}={v}')]
    env = {**os.environ, 'PYTHONPATH': str(Path(__file__).parents[1]), 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(tmp_path/'launch.py'),
                        'train-unet', '--out', str(tmp_path/'run'), *sets], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = tmp_path/'run'/'unet'
    for f in ['split.csv', 'history.csv', 'metrics.csv', 'model/model.safetensors', 'model/thresholds.json', 'summary.json']:
        assert (out/f).exists(), f
    assert not list(out.glob('.work*')) and "'rank': 1" in r.stdout   # rank 1 trained and returned; the shared work folder is gone
    assert len(json.loads((out/'summary.json').read_text())) and len((out/'history.csv').read_text().splitlines()) == 3   # 2 epochs

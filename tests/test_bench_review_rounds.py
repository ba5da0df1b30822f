"The review-rounds benchmark's measure of the queue (bench/bench_review_rounds.py): known answers on constructed tables."
import importlib.util
from pathlib import Path
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('bench_review_rounds', ROOT/'bench'/'bench_review_rounds.py')
brr = importlib.util.module_from_spec(spec); spec.loader.exec_module(brr)

def _queue(scores, errors):
    q = pd.DataFrame(dict(image=[f'i{k}' for k in range(len(scores))], score=scores, uncertainty=scores))
    q = q.sort_values('score', ascending=False).reset_index(drop=True); q.insert(0, 'rank', np.arange(1, len(q) + 1))
    err = pd.DataFrame(dict(image=[f'i{k}' for k in range(len(errors))], pixel_error=errors, object_error=errors[::-1]))
    return q, err

def test_queue_quality_known_answers():
    "A queue in the order of the true error: rho 1 and its first k are the truly worst; the object error reversed: rho -1."
    q, err = _queue([0.9, 0.8, 0.5, 0.2, 0.1], [0.7, 0.6, 0.3, 0.2, 0.0])
    r = brr.queue_quality(q, err, k=2)
    assert r['rho_score_pixel_error'] == 1.0 and r['rho_uncertainty_pixel_error'] == 1.0
    assert r['rho_score_object_error'] == -1.0
    assert r['pixel_error_top2'] == r['pixel_error_worst2'] == 0.65 and r['pixel_error_pool'] == 0.36
    assert r['object_error_top2'] == 0.1 and r['object_error_worst2'] == 0.65          # the reversed order picks the best
    assert (r['pool'], r['k']) == (5, 2)

def test_corrections_to_reach_interpolates():
    "Images corrected at which a mean curve first reaches a level: linear between rounds, NaN when never."
    g = pd.DataFrame(dict(corrected=[0, 6, 12, 0, 6, 12], seed=[0, 0, 0, 1, 1, 1], test_iou=[0.2, 0.5, 0.8, 0.2, 0.5, 0.8],
                          count_error=[1.0, -0.5, 0.2, 1.0, 0.5, 0.2]))
    assert brr.corrections_to_reach(g, 'test_iou', 0.65, 1) == 9.0
    assert np.isnan(brr.corrections_to_reach(g, 'test_iou', 0.9, 1))
    assert brr.corrections_to_reach(g, 'count_error', 0.5, -1) == 6.0                   # absolute error, lower is better

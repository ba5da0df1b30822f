"Notebooks teach from the repository alone: no committed warnings (stderr) with machine paths, no references outside the clone."
import json, re
from pathlib import Path
import pytest

NBS = sorted((Path(__file__).parents[1]/'nbs').glob('*.ipynb'))
OUTSIDE = re.compile(r'DESIGN\.md|/work/|/tmp/')   # files a clone does not have, machine paths


@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.stem)
def test_notebook_has_no_stderr_or_outside_references(nb):
    cells = json.loads(nb.read_text())['cells']
    stderr = [i for i, c in enumerate(cells) for o in c.get('outputs', []) if o.get('name') == 'stderr']
    assert not stderr, f'{nb.name}: cells {stderr} keep stderr output (warnings with machine paths): clear them'
    refs = [(i, m.group(0)) for i, c in enumerate(cells) for m in OUTSIDE.finditer(''.join(c['source']))]
    assert not refs, f'{nb.name}: references outside the repository in cells {refs}'


def test_outside_pattern_finds_what_it_should():
    assert OUTSIDE.search('see DESIGN.md §3') and OUTSIDE.search('/work/exp/ms/verify.py') and not OUTSIDE.search('runs/demo/unet')

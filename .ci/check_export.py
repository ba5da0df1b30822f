"""Fail when the exported package differs from what the notebooks export (the notebooks are the source of truth)."""
import filecmp, shutil, sys, tempfile
from pathlib import Path
from nbdev.config import get_config
from nbdev.doclinks import nbdev_export

cfg = get_config()
lib = Path(cfg.lib_path)
with tempfile.TemporaryDirectory() as tmp:
    saved = Path(tmp) / 'lib'
    shutil.copytree(lib, saved, ignore=shutil.ignore_patterns('__pycache__'))
    nbdev_export()
    cmp = filecmp.dircmp(saved, lib, ignore=['__pycache__'])
    changed = cmp.diff_files + cmp.left_only + cmp.right_only
    if changed:
        shutil.rmtree(lib); shutil.copytree(saved, lib)  # leave the tree as it was
        sys.exit(f'accords_tem/ does not match the notebooks: {sorted(changed)}. Run nbdev_export and commit.')
print('accords_tem/ matches the notebooks')

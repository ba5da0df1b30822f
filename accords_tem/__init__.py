"""accords-tem: TEM micrographs of graphene-based materials, from raw images to objects measured in nm.

The public API, a handful of verbs (each is imported when first used, so `import accords_tem` stays light):

- `read_tem(path)`: a micrograph as a 2-D array, in its native dtype (TIFF, PNG, JPEG, DM3/DM4)
- `pixel_size(path, calibration=None)`: its nm/px and where that came from (metadata, magnification + calibration)
- `load_config(path_or_name=None, overrides=None)`: a run's configuration ('default', 'demo' or a YAML file)
- `run(config, out, stages=None)`: the pipeline into a run folder (papermill, resumable); `accords-tem run` on the command line
- `predict(model_dir, images, out, nm_per_px=None)`: masks, instances and measured objects of new images with a trained model
- `measure(labels, image=None, *, spacing=None)`: one row per object (size, shape, intensity, texture), in nm with `spacing`

Everything else lives in the modules, one per pipeline stage (`accords_tem.io`, `.normalization`, ..., `.pipeline`).
This file is written by hand (nbdev only keeps `__version__` up to date).
"""
__version__ = "0.1.0"

import warnings as _warnings

# fastai (imported by the training stages) decorates functions with torch.jit.script, which torch >= 2.9 reports as
# deprecated on every import. The warning is about fastai's code, not a user's: silence exactly that one message.
_warnings.filterwarnings('ignore', message=r'`torch\.jit\.script` is deprecated', category=FutureWarning, module=r'torch\.jit\._script')

_API = {'read_tem': ('io', 'read_tem'), 'pixel_size': ('io', 'pixel_size'), 'load_config': ('core', 'load_config'),
        'run': ('pipeline', 'run_pipeline'), 'predict': ('objects', 'predict_objects'), 'measure': ('objects', 'object_features'),
        'AccordsError': ('core', 'AccordsError')}
__all__ = list(_API)

def __getattr__(name:str):
    if name not in _API: raise AttributeError(f"module 'accords_tem' has no attribute {name!r}")
    import importlib
    mod, attr = _API[name]
    return getattr(importlib.import_module(f'{__name__}.{mod}'), attr)

def __dir__(): return sorted(list(globals()) + __all__)

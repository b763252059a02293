"""PyInstaller hook for diffusers (pyinstaller-hooks-contrib has none).

- diffusers resolves its classes lazily (`_LazyModule`; `model_index.json` names classes by string), so collect
  every submodule rather than trust the import analysis. Its `TYPE_CHECKING` import blocks pull in all pipeline
  families anyway, so pruning them here would only make the lazy loader fail later, not save space.
- `pyz+py`: modules go in the archive AND as .py files beside it, because torch's JIT and diffusers' own
  `inspect.getsource` calls fail with "could not get source code" otherwise (pyinstaller/pyinstaller#5673).
- diffusers checks its dependencies' versions through package metadata at import time: copy it.
"""
from PyInstaller.utils.hooks import collect_data_files, collect_submodules, copy_metadata


def _installable(name: str) -> bool:
    """Flax and ONNX modules need back ends the app does not install; collecting them only logs errors."""
    return "flax" not in name and not name.endswith("_onnx") and ".onnx_utils" not in name


module_collection_mode = "pyz+py"
hiddenimports = collect_submodules("diffusers", filter=_installable, on_error="ignore")
datas = collect_data_files("diffusers") + copy_metadata("diffusers")

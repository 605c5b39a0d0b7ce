"""TFLite face embedding on the device: LiteRT first, tflite-runtime as fallback.

The chip arrives as an 8-bit BGR array (OpenCV's order) in the model's chip
size; the model card says how to turn it into the input tensor, so the same
code runs the dlib network and any keras-vggface export, float or quantised.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from device.vision.model_card import ModelCard, convert_command, load_card

# LiteRT's C++ logger writes this to fd 2 each time an interpreter is built; no
# environment variable turns it off (TF_CPP_MIN_LOG_LEVEL is TensorFlow's, not
# LiteRT's), so it is filtered out of a temporary fd-2 capture instead.
RUNTIME_NOISE = re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.\s*$")


class EmbedderError(RuntimeError):
    """The model file cannot be run, or does not agree with its sidecar (one line)."""


@contextlib.contextmanager
def filtered_native_stderr(noise: re.Pattern[str] = RUNTIME_NOISE) -> Iterator[None]:
    """Capture what native code writes to fd 2 meanwhile, and pass on all but the `noise` lines.

    Other lines (a real LiteRT error) still reach stderr, after the block.
    Where fd 2 cannot be duplicated (no real stderr), the block just runs.
    """
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines() if not noise.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def _interpreter_class():
    """Import lazily: a missing runtime is a clear error, not an ImportError at CLI start."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError:
        raise EmbedderError(
            "no TFLite runtime found: install `ai-edge-litert` (or `tflite-runtime` on 32-bit Raspberry Pi OS)"
        ) from None


def chip_to_tensor(chip_bgr: np.ndarray, card: ModelCard) -> np.ndarray:
    """Pure preprocessing: 8-bit BGR chip -> float32 HxWx3 input, as the card says."""
    pixels = chip_bgr[..., ::-1] if card.colour_order == "RGB" else chip_bgr
    mean = np.asarray(card.normalisation.mean, dtype=np.float32)
    return (pixels.astype(np.float32) - mean) * np.float32(card.normalisation.scale)


class Embedder:
    """One loaded model. Create once per process; `embed` is called per chip."""

    def __init__(self, model_path: Path, card: ModelCard | None = None, threads: int = 2) -> None:
        self.model_path = Path(model_path)
        self.card = card or load_card(self.model_path)
        Interpreter = _interpreter_class()
        redo = f"re-run `{convert_command(self.model_path)}` on a workstation and copy both files here"
        try:
            with filtered_native_stderr():
                self._interp = Interpreter(model_path=str(self.model_path), num_threads=threads)
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise EmbedderError(f"cannot load TFLite model {self.model_path}: {exc}; {redo}") from None
        inp = self._interp.get_input_details()[0]
        out = self._interp.get_output_details()[0]
        self._in_index, self._in_dtype = inp["index"], inp["dtype"]
        self._in_quant = inp.get("quantization", (0.0, 0))
        self._out_index, self._out_quant = out["index"], out.get("quantization", (0.0, 0))
        self._out_dtype = out["dtype"]
        width, height = self.card.chip.size
        expected = (1, height, width, 3)
        shape = tuple(int(n) for n in inp["shape"])
        if shape != expected:
            raise EmbedderError(
                f"{self.model_path.name} takes input {shape} but its sidecar chip size means {expected}: {redo}"
            )
        size = int(out["shape"][-1])
        if size != self.card.embedding_size:
            raise EmbedderError(
                f"{self.model_path.name} outputs {size}-d embeddings but its sidecar says embedding_size "
                f"{self.card.embedding_size}: {redo}"
            )

    @property
    def embedding_size(self) -> int:
        return self.card.embedding_size

    def embed_tensor(self, tensor: np.ndarray) -> np.ndarray:
        """Run one already-normalised HxWx3 float32 input; returns a float32 vector."""
        x = tensor[None]
        if self._in_dtype in (np.int8, np.uint8):
            scale, zero = self._in_quant
            x = np.clip(np.round(x / scale + zero), np.iinfo(self._in_dtype).min, np.iinfo(self._in_dtype).max)
        self._interp.set_tensor(self._in_index, x.astype(self._in_dtype))
        self._interp.invoke()
        y = self._interp.get_tensor(self._out_index)[0]
        if self._out_dtype in (np.int8, np.uint8):
            scale, zero = self._out_quant
            y = (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32).reshape(-1)

    def embed(self, chip_bgr: np.ndarray) -> np.ndarray:
        return self.embed_tensor(chip_to_tensor(chip_bgr, self.card))

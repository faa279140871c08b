"""``onnx2tf`` exactly as its command line runs, but offline: ``python _onnx2tf_offline.py ARGS``.

onnx2tf downloads 20 MS-COCO sample images (from GitHub) for the accuracy check of every model
whose inputs are all 3-channel 4-D images, even when ``-cind`` gives the calibration data; with
no network that download kills the conversion. Here the download function returns the first 20
samples of the first ``-cind`` file instead, and then onnx2tf's own ``main()`` runs with the
given arguments: same defaults, same onnxsim step, same calibration as the command line.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["main"]


def main(argv: list[str]) -> None:
    """Run onnx2tf's CLI on *argv* with its sample-image download replaced."""
    import onnx2tf
    import onnx2tf.onnx2tf as core
    import onnx2tf.utils.common_functions as common

    first = argv[argv.index("-cind") + 2] if "-cind" in argv else None

    def local_samples() -> np.ndarray:
        if first is None:
            raise RuntimeError("offline: onnx2tf wants its sample images; give -cind data")
        return np.load(first)[:20].astype(np.float32)

    core.download_test_image_data = local_samples
    common.download_test_image_data = local_samples
    sys.argv = ["onnx2tf", *argv]
    onnx2tf.main()


if __name__ == "__main__":
    main(sys.argv[1:])

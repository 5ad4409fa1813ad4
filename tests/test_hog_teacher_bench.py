"""benchmarks/hog_teacher.py: the HOG teacher's boxes come back in the frame's own pixels, and an
opencv without HOG gets an error that says what to install."""

from __future__ import annotations

import types

import numpy as np
import pytest

from benchmarks import hog_teacher


class _FixedHog:
    """Stands in for cv2.HOGDescriptor: one detection at fixed coordinates of the image it is given."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def detectMultiScale(self, image, **kwargs):  # noqa: N802 (OpenCV's name)
        self.shapes.append(image.shape)
        return np.array([[10, 20, 64, 128]]), np.array([[0.7]])


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_detect_frame_maps_boxes_back_to_the_frame(scale):
    hog = _FixedHog()
    frame = np.zeros((60, 80, 3), np.uint8)
    boxes, scores = hog_teacher.detect_frame(hog, frame, scale)
    assert hog.shapes == [(round(60 * scale), round(80 * scale), 3)]
    np.testing.assert_allclose(boxes, [[10 / scale, 20 / scale, 64 / scale, 128 / scale]])
    np.testing.assert_allclose(scores, [0.7])


def test_opencv_without_hog_names_the_fix(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "cv2", types.SimpleNamespace(__version__="5.1.0"))
    with pytest.raises(RuntimeError, match="opencv-python-headless<5"):
        hog_teacher.hog_detector()

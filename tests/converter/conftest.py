"""Fixtures shared by the converter tests."""

from pathlib import Path

import pytest

from converter.models import SourceNotFoundError, packaged_file
from tests.conftest import skip_unless_ci


@pytest.fixture(scope="module")
def dat_path() -> Path:
    """dlib's face model as installed by face_recognition_models (skips when it is not)."""
    try:
        return packaged_file("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat")
    except SourceNotFoundError as exc:
        skip_unless_ci(str(exc))

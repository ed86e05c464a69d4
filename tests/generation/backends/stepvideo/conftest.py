from pathlib import Path

import pytest

from generation.backends.stepvideo.tiny import write_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny Step-Video-T2V checkpoint in the published layout, shared by the tests (read-only)."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("stepvideo") / "stepvideo-t2v")


@pytest.fixture(scope="session")
def tiny_backend(tiny_checkpoint: Path):
    from generation.backends import load_backend

    backend = load_backend("stepvideo", tiny_checkpoint, options={"free_text_encoders": False})
    yield backend
    backend.close()

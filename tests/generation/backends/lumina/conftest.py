from pathlib import Path

import pytest

from generation.backends.lumina.tiny import make_tiny_lumina


@pytest.fixture(scope="session")
def tiny_lumina(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny Lumina-Video checkpoint folder in the published layout, shared by the tests (read-only)."""
    return make_tiny_lumina(tmp_path_factory.mktemp("lumina") / "Lumina-Video-f24R960", seed=0)


@pytest.fixture(scope="session")
def lumina_backend(tiny_lumina: Path):
    from generation.backends import load_backend

    backend = load_backend("lumina", tiny_lumina)
    yield backend
    backend.close()

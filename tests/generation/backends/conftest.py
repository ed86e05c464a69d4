"""Tiny checkpoints shared by the backend tests: built once per session from code, random weights."""

from pathlib import Path

import pytest

from generation.backends.tiny import make_tiny_cogvideox, make_tiny_wan


@pytest.fixture(scope="session")
def tiny_wan(tmp_path_factory) -> Path:
    return make_tiny_wan(tmp_path_factory.mktemp("tiny") / "wan", seed=0)


@pytest.fixture(scope="session")
def tiny_wan_other(tmp_path_factory) -> Path:
    """A second checkpoint of the same family: same shapes, other random weights."""
    return make_tiny_wan(tmp_path_factory.mktemp("tiny") / "wan-other", seed=1)


@pytest.fixture(scope="session")
def tiny_cogvideox(tmp_path_factory) -> Path:
    return make_tiny_cogvideox(tmp_path_factory.mktemp("tiny") / "cogvideox", seed=0)


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory, tiny_wan, tiny_cogvideox):
    """family -> tiny checkpoint folder, for every family with a tiny checkpoint (built on first use)."""
    from generation.backends.tiny import make_tiny

    built = {"wan": tiny_wan, "cogvideox": tiny_cogvideox}

    def folder(family: str) -> Path:
        if family not in built:
            built[family] = make_tiny(family, tmp_path_factory.mktemp("tiny") / family)
        return built[family]

    return folder

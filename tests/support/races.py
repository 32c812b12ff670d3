"""A reader resolving a model root while a writer switches its pointer: what the reader saw."""

from __future__ import annotations

import threading

from corrosion.core import io_utils
from corrosion.models import serving, versions


def read_during_promotions(root: str, names: list[str], switches: int) -> tuple[list[str], list[str]]:
    """Promote ``names`` in turn ``switches`` times while another thread resolves ``root`` and reads
    the version's metadata; (versions the reader found, problems: a folder whose metadata names
    another version, or any error a half-written pointer would raise)."""
    seen: list[str] = []
    problems: list[str] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                folder = versions.resolve(root)
                name = io_utils.basename(folder)
                if serving.read_metadata(folder).version != name:
                    problems.append(folder)
                seen.append(name)
            except Exception as exc:
                problems.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(switches):
            versions.promote(root, names[i % len(names)])
    finally:
        done.set()
        thread.join()
    return seen, problems

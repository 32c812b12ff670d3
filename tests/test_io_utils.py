"""File helpers shared by the pipelines: writes from many worker threads into one new folder."""

from __future__ import annotations

import threading
from pathlib import Path

from corrosion.core import io_utils


def test_many_threads_writing_into_one_new_folder_all_succeed(tmp_path: Path) -> None:
    # Beam's DirectRunner writes previews from several threads at once; the folder does not exist
    # yet, so every thread tries to create it (CI once failed here with "File exists").
    folder = tmp_path / "report" / "previews"
    threads_count = 16
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def write(index: int) -> None:
        barrier.wait()
        try:
            io_utils.write_bytes(str(folder / f"{index}.jpg"), bytes([index]))
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    workers = [threading.Thread(target=write, args=(i,)) for i in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{i}.jpg" for i in range(threads_count))
    assert (folder / "7.jpg").read_bytes() == bytes([7])


def test_make_dirs_leaves_object_store_paths_alone(tmp_path: Path) -> None:
    io_utils.make_dirs("gs://bucket/some/prefix")  # no directories in object stores: no call out
    io_utils.make_dirs(str(tmp_path / "a" / "b"))
    io_utils.make_dirs(str(tmp_path / "a" / "b"))  # existing folder is fine
    assert (tmp_path / "a" / "b").is_dir()

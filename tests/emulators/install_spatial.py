"""Installs DuckDB's spatial extension from its PyPI wheel into .venv-emulators/home, offline.

bqemulator runs ``INSTALL spatial`` at start-up, which downloads the extension unless DuckDB's
extension folder (``$HOME/.duckdb/extensions``) already has it; the emulator is started with
HOME set to that folder (corrosion.testing.emulators), so nothing is fetched at run time.
"""

import pathlib

import duckdb
import duckdb_extension_spatial

extension = next(pathlib.Path(duckdb_extension_spatial.__file__).parent.glob("extensions/v*/spatial.duckdb_extension"))
connection = duckdb.connect()
connection.execute(f"INSTALL '{extension}'")
connection.execute("LOAD spatial")
print(f"DuckDB spatial extension installed from {extension}")

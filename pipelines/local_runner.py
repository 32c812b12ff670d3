"""The local default engine of both pipelines: Beam's in-process ``FnApiRunner``.

Without ``--runner``, Beam's DirectRunner first tries to download its Prism binary (which fails,
with a logged error, on a machine without internet) and then falls back to this same engine.
Naming it directly keeps local runs offline and their logs free of that false alarm; any
``--runner`` given (DataflowRunner, DirectRunner, ...) is left as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


def with_local_default(beam_args: Sequence[str], *local_flags: str) -> list[str]:
    """``beam_args`` with the local engine (and ``local_flags``) in front, unless a runner is named."""
    if any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        return list(beam_args)
    return [f"--runner={LOCAL_RUNNER}", *local_flags, *beam_args]

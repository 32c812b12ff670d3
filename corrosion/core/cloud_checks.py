"""Launch checks of the cloud locations a job will use: one quick request each, no retries.

Google's clients retry a refused connection or a server error for up to 120 s per call, which is
right for a blip in the middle of a night and wrong at launch: a missing bucket, a permission
the job's account lacks, or a storage or BigQuery endpoint that does not answer would otherwise
surface minutes later, on a worker, as a stack of retry errors. Each ``gs://`` location is listed
(one object at most, ``storage.objects.list``, which the job needs anyway) with Beam's own storage
client, so the check sees what the job will see (credentials, ``STORAGE_EMULATOR_HOST``); a
BigQuery table's dataset is fetched with google-cloud-bigquery (``BIGQUERY_EMULATOR_HOST``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from corrosion.core import io_utils, listing

log = logging.getLogger(__name__)

TIMEOUT_S = 15.0
STORAGE_ENDPOINT = "https://storage.googleapis.com"
BIGQUERY_ENDPOINT = "https://bigquery.googleapis.com"


class CloudLocationError(SystemExit):
    """A location the job cannot use, refused at launch like every other bad argument: the message
    names the location and what to do, printed instead of a traceback (exit status 1)."""


def storage_endpoint() -> str:
    return os.environ.get("STORAGE_EMULATOR_HOST") or STORAGE_ENDPOINT


def bigquery_endpoint() -> str:
    return os.environ.get("BIGQUERY_EMULATOR_HOST") or BIGQUERY_ENDPOINT


def bucket_and_prefix(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b*.jpg`` -> (``bucket``, ``a/b``): the listing prefix before any glob character."""
    rest = uri.split("://", 1)[1]
    bucket, _, name = rest.partition("/")
    head = listing.GLOB_CHARS.split(name)[0]
    return bucket, head


def _unreachable(service: str, endpoint: str, what: str, exc: BaseException) -> CloudLocationError:
    return CloudLocationError(
        f"{service} at {endpoint} did not answer within {TIMEOUT_S:.0f} s while checking {what} "
        f"({type(exc).__name__}: {exc}); check the network, or the emulator variable if you use one"
    )


def check_storage(uris: Iterable[str | None], timeout: float = TIMEOUT_S) -> None:
    """Each distinct ``gs://`` bucket and prefix in ``uris`` can be listed; CloudLocationError naming the
    first that cannot (missing bucket, no permission, service not answering). Local paths are skipped."""
    remote = sorted({bucket_and_prefix(u) for u in uris if u and io_utils.is_remote(u) and u.startswith("gs://")})
    if not remote:
        return
    from apache_beam.io.gcp.gcsio import create_storage_client
    from apache_beam.options.pipeline_options import PipelineOptions
    from google.api_core import exceptions as api
    from requests import exceptions as http

    client = create_storage_client(PipelineOptions())
    for bucket, prefix in remote:
        where = f"gs://{bucket}/{prefix}"
        try:
            next(iter(client.list_blobs(bucket, prefix=prefix, max_results=1, timeout=timeout, retry=None)), None)
        except api.NotFound as exc:
            raise CloudLocationError(f"{where}: the bucket {bucket} does not exist ({exc.message})") from exc
        except (api.Forbidden, api.Unauthorized) as exc:
            raise CloudLocationError(
                f"{where}: the job's account may not list this bucket (storage.objects.list): {exc.message}"
            ) from exc
        except (http.ConnectionError, http.Timeout, api.ServiceUnavailable) as exc:
            raise _unreachable("Cloud Storage", storage_endpoint(), where, exc) from exc
        log.info("checked %s", where)


def check_bigquery(table: str | None, timeout: float = TIMEOUT_S) -> None:
    """``PROJECT:DATASET.TABLE``'s dataset exists and BigQuery answers (the job creates the table)."""
    if not table:
        return
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth
    from google.cloud import bigquery
    from requests import exceptions as http

    project, _, rest = table.rpartition(":")
    dataset = rest.split(".")[0]
    if not dataset or "." not in rest:
        raise CloudLocationError(f"--bigquery_table {table}: expected PROJECT:DATASET.TABLE (or DATASET.TABLE)")
    try:
        client = bigquery.Client(project=project or None)
    except auth.DefaultCredentialsError as exc:
        raise CloudLocationError(
            f"--bigquery_table {table}: no Google credentials found; run `gcloud auth application-default login` "
            "or set GOOGLE_APPLICATION_CREDENTIALS to a service account key"
        ) from exc
    where = f"BigQuery dataset {client.project}:{dataset}"
    try:
        client.get_dataset(f"{client.project}.{dataset}", timeout=timeout, retry=None)
    except api.NotFound as exc:
        raise CloudLocationError(
            f"{where} does not exist: create it (bq mk --dataset {client.project}:{dataset}); the job creates the table"
        ) from exc
    except (api.Forbidden, api.Unauthorized) as exc:
        raise CloudLocationError(f"{where}: the job's account may not use it: {exc.message}") from exc
    except (http.ConnectionError, http.Timeout, api.ServiceUnavailable) as exc:
        raise _unreachable("BigQuery", bigquery_endpoint(), where, exc) from exc
    log.info("checked %s", where)


class ServiceUnreachable(RuntimeError):
    """Storage stopped answering during a run: the job stops rather than turn every photo it has
    left into an error row (each after the client's own retries)."""


def unreachable(exc: BaseException) -> str | None:
    """The service (``Cloud Storage at ENDPOINT``) when ``exc``, or what it wraps, is a connection
    that failed or timed out rather than an answer about the object; None otherwise."""
    from google.api_core import exceptions as api
    from requests import exceptions as http

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (http.ConnectionError, http.Timeout, ConnectionError, TimeoutError)):
            return f"Cloud Storage at {storage_endpoint()}"
        if isinstance(exc, api.RetryError) and exc.cause is not None:
            exc = exc.cause
            continue
        exc = exc.__cause__ or exc.__context__
    return None

"""Uploads in an S3-compatible bucket: django-storages' S3 backend, configured by the AIRLOCK_S3_* settings.

`settings.STORAGES["default"]` points here when `AIRLOCK_S3_BUCKET` is set (config/settings.py); nothing
else imports this module, so a deployment on local disk needs neither boto3 nor django-storages (the `s3`
extra). What the rest of the product sees:

* the Django storage API (save, delete, exists, size), with every boto3 fault turned into
  `StorageUnavailable` (503, and retried by the workers like a lost database connection), and a missing
  object into `FileNotFoundError`;
* `copy_to`: the object streamed into a file the caller owns, 1 MB at a time, stopping as soon as more
  bytes arrive than the caller allows -- never the whole object in memory (django-storages' own `open()`
  downloads the object into a SpooledTemporaryFile first, in memory up to `max_memory_size`);
* `presigned_post`: a browser upload straight to the bucket, bound by a POST policy to one key and one
  exact size (the bucket refuses anything else), signed for the endpoint the browser reaches.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

from config.errors import StorageUnavailable

CHUNK = 1 << 20
# Object-level "not there" codes; a missing *bucket* is a configuration fault, not a missing file.
_MISSING = {"NoSuchKey", "404", "NotFound"}
# Requests in flight at once when many objects are looked up (a confirm of 300 direct uploads).
HEADS_AT_ONCE = 8


def _client_config(conf: dict[str, Any]) -> Config:
    return Config(
        s3={"addressing_style": conf["ADDRESSING_STYLE"]},
        signature_version="s3v4",
        connect_timeout=conf["CONNECT_TIMEOUT"],
        read_timeout=conf["READ_TIMEOUT"],
        # A few quick retries inside one call ride over a blip; a longer outage surfaces as
        # StorageUnavailable (an upload is refused, a job is retried later by RQ).
        retries={"max_attempts": conf["MAX_ATTEMPTS"], "mode": "standard"},
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{error.get('Code') or status}: {error.get('Message') or 'no message'}"
    return f"{exc.__class__.__name__}: {exc}"


class S3UploadStorage(S3Storage):
    """django-storages' S3Storage configured from settings.AIRLOCK_S3, with product-level errors."""

    def __init__(self, **overrides: Any) -> None:
        conf = settings.AIRLOCK_S3
        self.public_endpoint_url = conf["PUBLIC_ENDPOINT_URL"] or conf["ENDPOINT_URL"] or None
        options: dict[str, Any] = {
            "bucket_name": conf["BUCKET"],
            "endpoint_url": conf["ENDPOINT_URL"] or None,
            "region_name": conf["REGION"] or None,
            "access_key": conf["ACCESS_KEY_ID"] or None,
            "secret_key": conf["SECRET_ACCESS_KEY"] or None,
            "location": conf["PREFIX"].strip("/"),
            "addressing_style": conf["ADDRESSING_STYLE"],
            "signature_version": "s3v4",
            "client_config": _client_config(conf),
            # Names are generated (uuid4): no existence check before each write.
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": True,
            # Anything that still calls open() spools to disk past 2.5 MB instead of holding the object.
            "max_memory_size": 2_621_440,
        }
        super().__init__(**{**options, **overrides})
        self._presigners = threading.local()

    def warm_up(self) -> None:
        """Build the client (and load botocore's models) now; no request is made."""
        self.connection.meta.client  # noqa: B018 - creating it is the point

    # -- errors ------------------------------------------------------------------------------------

    @contextmanager
    def _faults(self, doing: str, name: str = "") -> Iterator[None]:
        """boto3's exceptions, translated: a missing object is FileNotFoundError, the rest StorageUnavailable."""
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if name and code in _MISSING:
                raise FileNotFoundError(f"{name} is not in bucket {self.bucket_name}") from exc
            raise self._unavailable(doing, exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable(doing, exc) from exc

    def _unavailable(self, doing: str, exc: BaseException) -> StorageUnavailable:
        where = self.endpoint_url or "AWS S3"
        return StorageUnavailable(
            f"The file storage could not {doing} (bucket '{self.bucket_name}' at {where}: {_describe(exc)}).",
            details={"storage": "s3", "bucket": self.bucket_name, "reason": _describe(exc)[:300]},
        )

    def key(self, name: str) -> str:
        """The object key of a stored name (the AIRLOCK_S3_PREFIX in front)."""
        return self._normalize_name(clean_name(name))

    def _save(self, name: str, content: Any) -> str:
        with self._faults("store the upload"):
            return super()._save(name, content)

    def delete(self, name: str) -> None:
        with self._faults("delete a stored upload"):
            super().delete(name)

    def exists(self, name: str) -> bool:
        with self._faults("look up a stored upload"):
            return super().exists(name)

    def size(self, name: str) -> int:
        with self._faults("look up a stored upload", name):
            return super().size(name)

    def _open(self, name: str, mode: str = "rb") -> Any:
        with self._faults("read a stored upload", name):
            return super()._open(name, mode)

    # -- streaming ---------------------------------------------------------------------------------

    def copy_to(self, name: str, out: IO[bytes], *, limit: int, too_big: Callable[[int], Exception]) -> tuple[int, str]:
        """Stream the object into `out`; returns (size, sha256). More than `limit` bytes raise `too_big(limit)`."""
        client = self.connection.meta.client
        digest = hashlib.sha256()
        size = 0
        with self._faults("read a stored upload", name):
            body = client.get_object(Bucket=self.bucket_name, Key=self.key(name))["Body"]
            try:
                while chunk := body.read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise too_big(limit)
                    digest.update(chunk)
                    out.write(chunk)
            finally:
                body.close()
        return size, digest.hexdigest()

    def head(self, name: str) -> int | None:
        """The object's size, or None when there is no such object."""
        return self.heads([name])[0]

    def heads(self, names: list[str]) -> list[int | None]:
        """head() of each name, in order: HEAD requests HEADS_AT_ONCE at a time on one client (a confirm of 300
        uploads made 300 requests one after the other). The first fault of the bucket is raised."""
        client = self.connection.meta.client  # (a boto3 client may be shared by threads; a resource may not)

        def one(name: str) -> int | None:
            try:
                with self._faults("look up a stored upload", name):
                    return int(client.head_object(Bucket=self.bucket_name, Key=self.key(name))["ContentLength"])
            except FileNotFoundError:
                return None

        if len(names) <= 1:
            return [one(name) for name in names]
        with ThreadPoolExecutor(min(HEADS_AT_ONCE, len(names)), thread_name_prefix="s3-head") as pool:
            return list(pool.map(one, names))

    def iter_stored(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        """(name, last modified) of every object under `prefix`, 1,000 per listing request."""
        client = self.connection.meta.client
        root = self.key("")
        paginator = client.get_paginator("list_objects_v2")
        with self._faults("list stored uploads"):
            for page in paginator.paginate(Bucket=self.bucket_name, Prefix=self.key(prefix)):
                for item in page.get("Contents", []):
                    yield item["Key"][len(root) :].lstrip("/"), item["LastModified"]

    def delete_many(self, names: list[str]) -> None:
        """Delete up to 1,000 objects per request (missing ones are fine)."""
        client = self.connection.meta.client
        for start in range(0, len(names), 1000):
            keys = [{"Key": self.key(n)} for n in names[start : start + 1000]]
            with self._faults("delete stored uploads"):
                answer = client.delete_objects(Bucket=self.bucket_name, Delete={"Objects": keys, "Quiet": True})
            errors = [e for e in answer.get("Errors", []) if e.get("Code") not in _MISSING]
            if errors:
                raise StorageUnavailable(
                    f"The file storage refused to delete {len(errors)} stored uploads ({errors[0].get('Code')}: "
                    f"{errors[0].get('Message')}).",
                    details={"storage": "s3", "bucket": self.bucket_name},
                )

    # -- direct uploads ----------------------------------------------------------------------------

    def presigned_post(self, name: str, *, size: int, expires: int) -> dict[str, Any]:
        """A POST policy for exactly this key and exactly `size` bytes: {"url", "fields"} for a browser form."""
        # Signed for the endpoint the browser reaches (AIRLOCK_S3_PUBLIC_ENDPOINT_URL), not the one the
        # servers use; presigning makes no request.
        # One signing client per thread, kept: building a boto3 client costs ~0.1 s, 300 files would pay it 300 times.
        client = getattr(self._presigners, "client", None)
        if client is None:
            client = self._create_session().client(
                "s3", region_name=self.region_name, endpoint_url=self.public_endpoint_url, config=self.client_config
            )
            self._presigners.client = client
        with self._faults("sign a direct upload"):
            return client.generate_presigned_post(
                Bucket=self.bucket_name,
                Key=self.key(name),
                Conditions=[["content-length-range", size, size]],
                ExpiresIn=expires,
            )

    def ensure_bucket(self) -> bool:
        """Create the bucket when it does not exist; True when it was created."""
        client = self.connection.meta.client
        try:
            client.head_bucket(Bucket=self.bucket_name)
            return False
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) not in {"404", "NoSuchBucket", "NotFound"}:
                raise self._unavailable("find the bucket", exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable("find the bucket", exc) from exc
        with self._faults("create the bucket"):
            if self.region_name and self.region_name != "us-east-1":
                client.create_bucket(
                    Bucket=self.bucket_name, CreateBucketConfiguration={"LocationConstraint": self.region_name}
                )
            else:
                client.create_bucket(Bucket=self.bucket_name)
        return True

"""Upload batches, import files, the first target (broker trade orders) and API tokens."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.postgres.functions import TransactionNow
from django.db import models


class BatchStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    PROCESSING = "PROCESSING", "Processing"
    # Nothing left to process, but files wait for an admin to approve their format (not "Processing").
    WAITING = "WAITING", "Waiting for approval"
    COMPLETED = "COMPLETED", "Completed"
    PARTIAL = "PARTIAL", "Partially imported"
    FAILED = "FAILED", "Failed"


class ImportBatch(models.Model):
    """One upload session: one or many files sent together."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="import_batches")
    status = models.CharField(max_length=12, choices=BatchStatus.choices, default=BatchStatus.PENDING)
    file_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "import batches"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Batch {self.pk} ({self.file_count} files, {self.status})"


class FileStatus(models.TextChoices):
    UPLOADED = "UPLOADED", "Queued"
    PROCESSING = "PROCESSING", "Reading"
    PENDING_APPROVAL = "PENDING_APPROVAL", "Pending approval"
    MIGRATING = "MIGRATING", "Importing"
    IMPORTED = "IMPORTED", "Imported"
    PARTIAL = "PARTIAL", "Imported with invalid rows"
    FAILED = "FAILED", "Failed"
    REJECTED = "REJECTED", "Format rejected"
    NO_TRADES = "NO_TRADES", "No trades"  # the file holds no buys or sells (its error says why); rows kept staged
    ROLLED_BACK = "ROLLED_BACK", "Rolled back"
    PURGED = "PURGED", "Purged"


# Work is still due on these; the reconciler looks for them.
UNFINISHED_FILE_STATUSES = (FileStatus.UPLOADED, FileStatus.PROCESSING, FileStatus.MIGRATING)
# An upload of the same bytes by the same owner returns the existing import unless it ended here.
REUPLOADABLE_FILE_STATUSES = (FileStatus.ROLLED_BACK, FileStatus.PURGED)


class ImportFile(models.Model):
    """One uploaded CSV file and where it is in its lifecycle."""

    # Not a column: set on the instance an upload returns when the same bytes were uploaded before.
    is_existing: bool = False
    # Not a column: set when that earlier import had FAILED and the upload retried it.
    is_retried: bool = False

    batch = models.ForeignKey(ImportBatch, on_delete=models.CASCADE, related_name="files")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="import_files")
    original_name = models.CharField(max_length=255, help_text="Sanitised, for display only.")
    stored_name = models.CharField(max_length=255, unique=True, help_text="Generated storage path.")
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    status = models.CharField(max_length=20, choices=FileStatus.choices, default=FileStatus.UPLOADED)
    format = models.ForeignKey(
        "formats.CsvFormat", null=True, blank=True, on_delete=models.PROTECT, related_name="files"
    )
    layout = models.JSONField(default=dict, blank=True, help_text="Detected encoding, delimiter, header...")
    rows_total = models.PositiveIntegerField(default=0)
    rows_staged = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(default=0)
    rows_invalid = models.PositiveIntegerField(default=0)
    rows_skipped = models.PositiveIntegerField(default=0)
    rows_duplicate = models.PositiveIntegerField(default=0)
    skip_reasons = models.JSONField(default=dict, blank=True, help_text="{reason: count}")
    progress = models.FloatField(default=0.0, help_text="0..100")
    error = models.TextField(blank=True, help_text="Human-readable reason when the file failed.")
    dedupe = models.BooleanField(default=True, help_text="Skip orders the owner already has.")
    target = models.CharField(
        max_length=50, default="orders", help_text="What the file holds (formats/targets.py): matched to its formats."
    )
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    upload_deleted_at = models.DateTimeField(null=True, blank=True, help_text="When retention deleted the raw file.")
    content_checked = models.BooleanField(
        default=True,
        help_text="Sniffed and virus-scanned. False for a direct upload to the bucket until its worker has checked "
        "the object, before anything else reads it.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Idempotent uploads: the same bytes from the same owner are one import (unless it was
            # rolled back or purged). Enforced here, not by check-then-insert.
            models.UniqueConstraint(
                fields=["owner", "sha256"],
                condition=~models.Q(status__in=["ROLLED_BACK", "PURGED"]),
                name="importfile_unique_owner_sha256",
            ),
            # What an order's foreign key to its file refers to (migration 0017): its owner is the file's owner.
            models.UniqueConstraint(fields=["id", "owner"], name="importfile_id_owner"),
            # And what a staged row's does (staging migration 0002): it is staged for its file's format.
            models.UniqueConstraint(fields=["id", "format"], name="importfile_id_format"),
        ]
        indexes = [models.Index(fields=["status"], name="importfile_status")]
        permissions = [("rollback_importfile", "Can roll back an imported file")]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.get_status_display()})"

    @property
    def direct_read_part_way(self) -> bool:
        """Being imported straight from the file (`layout.direct`) and not read to its end yet."""
        direct = (self.layout or {}).get("direct")
        return bool(direct and not direct.get("complete"))

    @property
    def is_finished(self) -> bool:
        return self.status not in UNFINISHED_FILE_STATUSES


class DirectUploadSlot(models.Model):
    """One file a browser may send straight to the bucket: the key, exact size and sha256 it was promised.

    Issued by POST /api/uploads/direct (imports/services/direct_uploads.py); the confirm request turns the
    slots whose objects arrived into import files. Unconfirmed slots expire, and their objects -- bytes a
    browser sent but never confirmed -- are deleted by the cleanup, so nothing lingers in the bucket unseen.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255, unique=True, help_text="The storage name the object is uploaded to.")
    original_name = models.CharField(max_length=255, help_text="Sanitised, for display only.")
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, help_text="As declared by the browser; the worker checks it.")
    dedupe = models.BooleanField(default=True)
    target = models.CharField(max_length=50, default="orders")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    file = models.ForeignKey(
        ImportFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="Once confirmed."
    )

    def __str__(self) -> str:
        return f"{self.original_name} -> {self.key}"


class Side(models.TextChoices):
    BUY = "BUY", "Buy"
    SELL = "SELL", "Sell"


class Order(models.Model):
    """The first target: a broker trade (one fill)."""

    # No single-column indexes on the two foreign keys: the composite indexes below start with them, and
    # every extra index is written for each imported row. In Postgres the two are one foreign key,
    # (source_file_id, owner_id) -> the file's (id, owner_id) (migration 0017): an order belongs to its file's
    # owner, and each imported row is checked once at commit instead of twice (the owner is the file's, whose
    # own foreign key holds it). Django still knows both as foreign keys (joins, on_delete).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="orders", db_index=False, db_constraint=False
    )
    account = models.CharField(max_length=64, blank=True)
    symbol = models.CharField(max_length=64)
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = models.DecimalField(max_digits=28, decimal_places=10)
    price = models.DecimalField(max_digits=28, decimal_places=10)
    commission = models.DecimalField(max_digits=28, decimal_places=10, default=0)
    currency = models.CharField(max_length=10)  # ISO 4217, or a crypto asset code (USDT)
    executed_at = models.DateTimeField()
    broker_trade_id = models.CharField(max_length=128, blank=True)
    source_file = models.ForeignKey(
        ImportFile, on_delete=models.PROTECT, related_name="orders", db_index=False, db_constraint=False
    )
    source_line = models.PositiveIntegerField()
    dedupe_key = models.CharField(max_length=80, blank=True, help_text="Identity of the trade for its owner.")
    # The instrument the symbol was reconciled to (imports/services/reconciliation.py); empty while it waits.
    instrument = models.ForeignKey(
        "Instrument", null=True, blank=True, on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped by every ORM save; the bulk insert leaves it equal to created_at (db default now()), so a
    # rollback can tell orders changed after their import from untouched ones (imports/services/rollback.py).
    updated_at = models.DateTimeField(auto_now=True, db_default=TransactionNow())

    class Meta:
        ordering = ["-executed_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source_file", "source_line"], name="order_unique_source_row"),
            # Overlapping exports are not doubled: one order per trade identity and owner. Empty when
            # the upload asked for raw rows (dedupe off).
            models.UniqueConstraint(
                fields=["owner", "dedupe_key"], condition=~models.Q(dedupe_key=""), name="order_unique_owner_trade"
            ),
            models.CheckConstraint(condition=models.Q(side__in=["BUY", "SELL"]), name="order_side_valid"),
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(condition=models.Q(price__gte=0), name="order_price_not_negative"),
            models.CheckConstraint(condition=models.Q(commission__gte=0), name="order_commission_not_negative"),
        ]
        indexes = [
            models.Index(fields=["owner", "executed_at"], name="order_owner_executed"),
            models.Index(fields=["owner", "symbol"], name="order_owner_symbol"),
            models.Index(fields=["owner", "instrument"], name="order_owner_instrument"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} @ {self.price} {self.currency}"


class Instrument(models.Model):
    """The second target: master data of an instrument (imports/targets/instruments.py). One record per ISIN, else
    per ticker and exchange, for its owner: importing a refreshed list updates the records in place."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="instruments", db_index=False
    )
    isin = models.CharField(max_length=12, blank=True)
    ticker = models.CharField(max_length=64, blank=True)
    mic = models.CharField(max_length=4, blank=True)
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=10, blank=True)
    asset_class = models.CharField(max_length=40, blank=True)
    aliases = models.JSONField(default=list, blank=True)
    # The file and line that created the record; the last import that changed it is `updated_by_file`.
    source_file = models.ForeignKey(ImportFile, on_delete=models.PROTECT, related_name="instruments", db_index=False)
    source_line = models.PositiveIntegerField()
    updated_by_file = models.ForeignKey(
        ImportFile, on_delete=models.PROTECT, related_name="instruments_updated", null=True, blank=True
    )
    dedupe_key = models.CharField(max_length=80, help_text="Identity of the instrument for its owner.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_default=TransactionNow())

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["source_file", "source_line"], name="instrument_unique_source_row"),
            models.UniqueConstraint(fields=["owner", "dedupe_key"], name="instrument_unique_owner_identity"),
            models.CheckConstraint(condition=~models.Q(isin="", ticker=""), name="instrument_isin_or_ticker"),
        ]
        indexes = [
            models.Index(fields=["owner", "isin"], name="instrument_owner_isin"),
            models.Index(fields=["owner", "ticker"], name="instrument_owner_ticker"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.isin or self.ticker})"

    @staticmethod
    def identity(isin: str, ticker: str, mic: str) -> str:
        """One instrument per ISIN; without one, per ticker and exchange. 'id|...': a key without occurrences."""
        return f"id|isin|{isin}" if isin else f"id|ticker|{ticker}|{mic}"

    @staticmethod
    def key(isin: str, ticker: str, mic: str) -> str:
        """The dedupe key of that identity (hashed, as the pipeline keys every target's rows)."""
        return hashlib.sha256(Instrument.identity(isin, ticker, mic).encode()).hexdigest()


class InstrumentLink(models.Model):
    """A decision on one symbol value as orders spell it ('APPLE INC', 'AAPL.US'): the instrument it means, or
    none (leave unlinked). Made once per distinct value by a person, or automatically above the confidence
    threshold (decided_by empty, with its score); applies to every order with that value of its owner, past and
    future, in files of `format` only or of any format (format empty). It is the value's alias."""

    class Method(models.TextChoices):
        DECISION = "decision", "Decided by a person"
        CREATED = "created", "New instrument made from the order's data"
        FUZZY = "fuzzy", "Matched automatically (close name or ticker)"
        NORMALIZED = "normalized", "Matched automatically (exchange or pair suffix removed)"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    value = models.CharField(max_length=64, help_text="The symbol as orders hold it, upper-cased.")
    format = models.ForeignKey(
        "formats.CsvFormat", null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    instrument = models.ForeignKey(Instrument, null=True, blank=True, on_delete=models.CASCADE, related_name="links")
    method = models.CharField(max_length=12, choices=Method.choices)
    score = models.FloatField(null=True, blank=True, help_text="0..1 for automatic matches.")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "value", "format"], name="instrumentlink_unique_value", nulls_distinct=False
            )
        ]

    def __str__(self) -> str:
        return f"{self.value} -> {self.instrument or 'unlinked'}"


class IdempotencyKey(models.Model):
    """A client's `Idempotency-Key` for POST /api/uploads: the first response is replayed for a retry."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="sha256 of the request's files and fields.")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_unique_user_key")]

    def __str__(self) -> str:
        return f"{self.key} of user {self.user_id}"


PREFIX_LENGTH = 8


def new_token_key() -> str:
    """A new API token key: 256 random bits, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


class ApiToken(models.Model):
    """A bearer token for scripts: `Authorization: Bearer <key>`.

    Only the key's sha256 is stored (the key is shown once, when it is made: imports/services/tokens.py),
    so a copy of the database or a look at the admin gives no usable token. A fast hash is enough: the key is
    random with 256 bits of entropy, not a password to be guessed from a dictionary.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    key_hash = models.CharField(max_length=64, unique=True, help_text="sha256 of the key, hex.")
    prefix = models.CharField(
        max_length=PREFIX_LENGTH, help_text="The key's first characters (not secret): to tell tokens apart."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"token {self.prefix}… of {self.user}"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()


class AlertState(models.TextChoices):
    PENDING = "PENDING", "Pending"  # the condition holds, not yet for the rule's minimum duration
    FIRING = "FIRING", "Firing"
    RESOLVED = "RESOLVED", "Resolved"


class Alert(models.Model):
    """One episode of an alert rule's condition (imports/monitoring/alerts.py): from first seen to resolved."""

    rule = models.CharField(max_length=40)
    state = models.CharField(max_length=10, choices=AlertState.choices, default=AlertState.PENDING)
    summary = models.CharField(max_length=500, help_text="What was measured, in words, at the last evaluation.")
    value = models.FloatField(help_text="The measured value at the last evaluation.")
    threshold = models.FloatField()
    first_seen_at = models.DateTimeField(help_text="When the condition was first seen to hold.")
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField()
    # Delivery: set when the message went out; a failed one is tried again at the next evaluation.
    fire_notified_at = models.DateTimeField(null=True, blank=True)
    resolve_notified_at = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    notify_failures = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-first_seen_at", "-id"]
        constraints = [
            # At most one open episode per rule, whatever the number of evaluators.
            models.UniqueConstraint(
                fields=["rule"], condition=models.Q(resolved_at__isnull=True), name="alert_one_open_per_rule"
            )
        ]
        indexes = [models.Index(fields=["state"], name="alert_state")]

    def __str__(self) -> str:
        return f"{self.rule} ({self.get_state_display()})"

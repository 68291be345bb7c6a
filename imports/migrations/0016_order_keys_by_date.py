"""Orders' dedupe keys in date order (imports.targets.orders.order_digest): the keys written before, the sha256
of the trade's identity in 64 hex digits (and '#n' for identical fills), become the trade's UTC date and the
first 32 of those digits, which is exactly what the pipeline computes now for the same trade, so a file imported
again after the upgrade still finds its trades as duplicates.

Rows staged as duplicates carry the key they collided with (keys_resumed reads it back): it becomes the new key of
the order they duplicate. The reverse keeps the new keys: their dropped digits cannot be recomputed from them.

The orders are rewritten in slices of ids, each committed on its own (the migration is not atomic), so no
transaction holds every order's row lock for minutes: 13.7 million orders took 5 minutes here. Interrupted, it
is simply run again: only keys still in the old form are rewritten. Stop the workers while it runs (as for
every migration), so that no old worker writes an old key after its slice was done.
"""

from typing import Any

from django.db import migrations

OLD_KEY = "'^[0-9a-f]{64}(#[0-9]+)?$'"
SLICE = 200_000

ORDERS = f"""
    UPDATE imports_order
       SET dedupe_key = to_char(executed_at AT TIME ZONE 'UTC', 'YYYYMMDD') || left(dedupe_key, 32)
                        || substr(dedupe_key, 65)
     WHERE id >= %s AND id < %s AND dedupe_key ~ {OLD_KEY}
"""

DUPLICATES = f"""
    UPDATE staging_stagedrow AS s
       SET errors = jsonb_set(s.errors, '{{0,dedupe_key}}', to_jsonb(o.dedupe_key::text))
      FROM imports_importfile AS f, imports_order AS o
     WHERE s.status = 'DUPLICATE'
       AND s.errors -> 0 ->> 'dedupe_key' ~ {OLD_KEY}
       AND f.id = s.file_id AND f.target = 'orders'
       AND o.source_file_id = CASE WHEN s.errors -> 0 ->> 'duplicate_of_file' ~ '^[0-9]{{1,18}}$'
                                   THEN (s.errors -> 0 ->> 'duplicate_of_file')::bigint END
       AND o.source_line = CASE WHEN s.errors -> 0 ->> 'duplicate_of_line' ~ '^[0-9]{{1,9}}$'
                                THEN (s.errors -> 0 ->> 'duplicate_of_line')::int END
       AND left(o.dedupe_key, 8) || substr(s.errors -> 0 ->> 'dedupe_key', 1, 32)
           || substr(s.errors -> 0 ->> 'dedupe_key', 65) = o.dedupe_key
"""


def rewrite_keys(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM imports_order")
        low, high = cursor.fetchone()
    start = low or 0
    while high is not None and start <= high:
        with connection.cursor() as cursor:  # autocommit: each slice commits on its own
            cursor.execute(ORDERS, [start, start + SLICE])
        start += SLICE
    with connection.cursor() as cursor:
        cursor.execute(DUPLICATES)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("imports", "0015_file_occurrences"), ("staging", "0001_initial")]

    operations = [migrations.RunPython(rewrite_keys, migrations.RunPython.noop, elidable=False)]

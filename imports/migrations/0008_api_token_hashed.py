"""API tokens hashed at rest: each existing key's sha256 and first 8 characters replace the key itself.

Existing clients keep working (they send the same key; it is looked up by its hash). Going back cannot
restore the keys (they are gone once hashed): it deletes the tokens, and their users need new ones.
"""

import hashlib

from django.db import migrations, models


def hash_existing_keys(apps, schema_editor):
    ApiToken = apps.get_model("imports", "ApiToken")
    for token in ApiToken.objects.all().only("pk", "key"):
        token.key_hash = hashlib.sha256(token.key.encode()).hexdigest()
        token.prefix = token.key[:8]
        token.save(update_fields=["key_hash", "prefix"])


def forget_hashed_tokens(apps, schema_editor):
    apps.get_model("imports", "ApiToken").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("imports", "0007_no_trades_verdict")]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="key_hash",
            field=models.CharField(max_length=64, null=True, help_text="sha256 of the key, hex."),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="prefix",
            field=models.CharField(
                max_length=8,
                default="",
                help_text="The key's first characters (not secret): to tell tokens apart.",
            ),
            preserve_default=False,
        ),
        migrations.RunPython(hash_existing_keys, migrations.RunPython.noop, elidable=False),
        migrations.RemoveField(model_name="apitoken", name="key"),
        migrations.AlterField(
            model_name="apitoken",
            name="key_hash",
            field=models.CharField(max_length=64, unique=True, help_text="sha256 of the key, hex."),
        ),
        # Backwards, this runs first: a hash cannot become a key again.
        migrations.RunPython(migrations.RunPython.noop, forget_hashed_tokens, elidable=False),
    ]

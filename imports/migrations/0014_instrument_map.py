"""airlock_instrument_map(owner, file): the instrument each order value means for one owner and one file's format.

One definition, read by every statement that links orders to instruments (imports/services/reconciliation.py): the
inserts of the SQL and Python paths and the pass after a file. A function rather than a CTE repeated in each
statement: the statements stay short (pg_stat_activity shows their first 1,024 bytes: an INSERT stays
recognisable there), and the precedence is written once. Precedence: a person's decision for the file's format,
then for any format (a decision to leave a value unlinked maps it to NULL, above every automatic rule), an ISIN, a
ticker only one of the owner's instruments has, an alias only one has.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION airlock_instrument_map(p_owner bigint, p_file bigint)
RETURNS TABLE (value text, instrument_id bigint) LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ON (c.value) c.value, c.instrument_id FROM (
        SELECT l.value::text AS value, l.instrument_id, 1 AS rank FROM imports_instrumentlink l
         WHERE l.owner_id = p_owner AND l.format_id = (SELECT format_id FROM imports_importfile WHERE id = p_file)
        UNION ALL
        SELECT l.value::text, l.instrument_id, 2 FROM imports_instrumentlink l
         WHERE l.owner_id = p_owner AND l.format_id IS NULL
        UNION ALL
        SELECT i.isin::text, i.id, 3 FROM imports_instrument i WHERE i.owner_id = p_owner AND i.isin <> ''
        UNION ALL
        SELECT i.ticker::text, min(i.id), 4 FROM imports_instrument i WHERE i.owner_id = p_owner AND i.ticker <> ''
         GROUP BY i.ticker HAVING count(*) = 1
        UNION ALL
        SELECT upper(btrim(a.alias)), min(i.id), 5
          FROM imports_instrument i, jsonb_array_elements_text(i.aliases) AS a(alias)
         WHERE i.owner_id = p_owner GROUP BY upper(btrim(a.alias)) HAVING count(DISTINCT i.id) = 1
    ) c ORDER BY c.value, c.rank
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("imports", "0013_reconciliation")]

    operations = [migrations.RunSQL(CREATE, reverse_sql="DROP FUNCTION IF EXISTS airlock_instrument_map(bigint, bigint);")]

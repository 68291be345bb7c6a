"""The registry of targets' writers, chosen by a format's `target` (one module per target beside this one).

Adding a target: its schema in formats/targets.py, its model and migration in imports/, a module here with a
`WRITER` (imports/targets/base.py says what it provides), and one entry below. docs/targets.md has the steps.
"""

from __future__ import annotations

from dataclasses import replace

from config.errors import MappingError
from imports.services.reconciliation import orders_reconcile, orders_reconcile_waiting
from imports.targets import instruments, orders
from imports.targets.base import TargetWriter

# After a file: its orders are reconciled against the owner's instruments; new or changed instruments may match
# orders that were waiting (imports/services/reconciliation.py).
WRITERS: dict[str, TargetWriter] = {
    writer.name: writer
    for writer in (
        replace(orders.WRITER, after_file=orders_reconcile),
        replace(instruments.WRITER, after_file=orders_reconcile_waiting),
    )
}

# The target of an upload that does not name one.
DEFAULT_TARGET = orders.WRITER.name


def writer_for(target: str) -> TargetWriter:
    """The writer of this target; MappingError naming the known targets otherwise."""
    try:
        return WRITERS[target]
    except (KeyError, TypeError):
        known = ", ".join(sorted(WRITERS))
        raise MappingError(
            f"No writer for target {target!r}: imports can be written into {known}.", details={"target": target}
        ) from None

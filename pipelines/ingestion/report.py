"""The ingestion report: for every table, where each row read went.

Invariant, asserted for every table: rows_read = rows_kept + rows_rejected + rows_filtered.
Repaired rows are kept rows, counted once per repair rule that touched them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from features.export_date import ExportDate


@dataclass
class TableReport:
    """Counts for one canonical table."""

    table: str
    file: str | None = None
    rows_read: int = 0
    rows_kept: int = 0
    rows_repaired: Counter = field(default_factory=Counter)
    rows_rejected: Counter = field(default_factory=Counter)
    rows_filtered: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def check_invariant(self) -> None:
        """Every row read is kept, rejected or filtered: none vanishes."""
        accounted = self.rows_kept + sum(self.rows_rejected.values()) + sum(self.rows_filtered.values())
        if accounted != self.rows_read:
            raise AssertionError(
                f"{self.table}: read {self.rows_read} rows but accounted for {accounted} "
                f"(kept {self.rows_kept}, rejected {dict(self.rows_rejected)}, "
                f"filtered {dict(self.rows_filtered)})"
            )

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_repaired": dict(self.rows_repaired),
            "rows_rejected": dict(self.rows_rejected),
            "rows_filtered": dict(self.rows_filtered),
            "notes": list(self.notes),
        }

    def summary_line(self) -> str:
        """One log line; reasons are counts, never values (values may be personal data)."""

        def fmt(counter: Counter) -> str:
            return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items())) or "none"

        return (
            f"{self.table}: read {self.rows_read}, kept {self.rows_kept}, "
            f"rejected {sum(self.rows_rejected.values())} ({fmt(self.rows_rejected)}), "
            f"filtered {sum(self.rows_filtered.values())} ({fmt(self.rows_filtered)}), "
            f"repaired ({fmt(self.rows_repaired)})"
        )


@dataclass
class IngestReport:
    """The whole run: the export, the preset, the export date and one report per table.

    ``refused``: the one line the stage stopped with when a table lost too many rows to rejection.
    """

    export: Path
    preset: str
    export_date: ExportDate
    tables: dict[str, TableReport] = field(default_factory=dict)
    tables_absent: list[str] = field(default_factory=list)
    refused: str | None = None
    freshness: dict = field(default_factory=dict)  # event table -> first and last dated row, lag (features.freshness)

    def to_dict(self) -> dict:
        for report in self.tables.values():
            report.check_invariant()
        return {
            "export": str(self.export),
            "preset": self.preset,
            "export_date": self.export_date.to_dict(),
            "refused": self.refused,
            "tables": {name: r.to_dict() for name, r in self.tables.items()},
            "tables_absent": list(self.tables_absent),
            "freshness": self.freshness,
            "totals": {
                "rows_read": sum(r.rows_read for r in self.tables.values()),
                "rows_kept": sum(r.rows_kept for r in self.tables.values()),
                "rows_rejected": sum(sum(r.rows_rejected.values()) for r in self.tables.values()),
                "rows_filtered": sum(sum(r.rows_filtered.values()) for r in self.tables.values()),
            },
        }

"""What tokens cost: the one price formula, for stats.json, the report and the preview."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Prices:
    """Dollars per million tokens (None: not priced) and the Batch API's share of them."""

    input_per_mtok: float | None
    output_per_mtok: float | None
    batch_discount: float

    def cost(self, prompt: float, completion: float, share: float = 1.0) -> float | None:
        """The cost of ``prompt`` and ``completion`` tokens (times ``share``), or None when
        nothing is priced."""
        if self.input_per_mtok is None and self.output_per_mtok is None:
            return None
        return share * (prompt * (self.input_per_mtok or 0) + completion * (self.output_per_mtok or 0)) / 1e6

    def total(self, tokens: dict[str, Counter]) -> float | None:
        """The cost of ``{"online"|"batch": Counter(prompt=..., completion=...)}``, batch
        tokens at the batch discount (rounded to 6 decimals)."""
        if self.input_per_mtok is None and self.output_per_mtok is None:
            return None
        return round(sum(self.cost(counts["prompt"], counts["completion"],
                                   self.batch_discount if kind == "batch" else 1.0)
                         for kind, counts in tokens.items()), 6)

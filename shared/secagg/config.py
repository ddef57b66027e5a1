"""`[secure_aggregation]`: the SecAgg+ settings and the rules that turn them into k and t."""

from __future__ import annotations

from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg.quantize import check_no_overflow, check_weight_precision

MIN_HOSPITALS = 3


class SecureAggregationConfig(BaseModel):
    """Secure-aggregation settings shared by the coordinator and every hospital.

    Neighbours: `neighbours = None` (or ≥ n−1) is plain SecAgg, every hospital masks with
    every other one; an even `k` is SecAgg+ on a ring, k/2 neighbours on each side.

    Threshold rule: t = ⌊threshold_fraction · k⌋ + 1, the smallest number of neighbours that is
    strictly more than `threshold_fraction` of them. `threshold_fraction` lies in [0.5, 1), so
    t > k/2 always (the coordinator can never collect both kinds of secret for one hospital)
    and t ≤ k. Each surviving hospital needs t surviving neighbours, so up to k − t of any
    hospital's neighbours may drop out.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    neighbours: int | None = Field(
        default=None, ge=2, description="k, even; unset = all other hospitals (plain SecAgg)"
    )
    threshold_fraction: float = Field(
        default=0.5, ge=0.5, lt=1, description="t = floor(threshold_fraction * k) + 1"
    )
    clipping_range: float = Field(default=8.0, gt=0, description="values clipped to ±this")
    quantization_bits: int = Field(default=24, ge=1, le=50)
    field_bits: int = Field(default=62, ge=8, le=62, description="sums live mod 2^field_bits")
    max_weight: int = Field(default=100_000, ge=1, description="largest num_examples weight")
    min_hospitals: int = Field(
        default=MIN_HOSPITALS,
        ge=MIN_HOSPITALS,
        description="smallest roster to build (coordinator) or join (hospital)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> SecureAggregationConfig:
        if self.neighbours is not None and self.neighbours % 2:
            raise ValueError(
                f"secure_aggregation.neighbours = {self.neighbours} must be even (k/2 "
                "neighbours on each side of a ring); leave it unset for all hospitals"
            )
        try:
            check_weight_precision(self.max_weight, self.quantization_bits)
        except SecureAggregationError as error:
            raise ValueError(str(error)) from None
        return self

    def neighbours_for(self, num_hospitals: int) -> int:
        """k for a roster of `num_hospitals`: the configured value, capped at n − 1."""
        if num_hospitals < self.min_hospitals:
            raise SecureAggregationError(
                f"secure aggregation needs at least secure_aggregation.min_hospitals = "
                f"{self.min_hospitals} hospitals, got {num_hospitals} (a sum over few hospitals "
                "tells each of them, or a coordinator colluding with all but one, the others' "
                "updates)"
            )
        if self.neighbours is None or self.neighbours >= num_hospitals - 1:
            return num_hospitals - 1
        return self.neighbours

    def threshold_for(self, num_neighbours: int) -> int:
        """t for `num_neighbours` = k: ⌊threshold_fraction · k⌋ + 1 (exact decimal arithmetic)."""
        fraction = Fraction(repr(self.threshold_fraction))
        return min(num_neighbours, int(fraction * num_neighbours) + 1)

    def check_for(self, num_hospitals: int) -> None:
        """Raise `SecureAggregationError` if `num_hospitals` sums could overflow the field."""
        self.neighbours_for(num_hospitals)
        check_no_overflow(
            num_hospitals=num_hospitals,
            max_weight=self.max_weight,
            clipping_range=self.clipping_range,
            quantization_bits=self.quantization_bits,
            field_bits=self.field_bits,
        )

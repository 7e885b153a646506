"""ab_split: sends each target down one variant's edge, chosen by weight from a hash of the target's key.

Unlike the built-in ``random_cohort`` (which hashes the run id), the choice depends only on the scope and the
target's key, so a retry, a relaunch of the campaign or — with a shared ``salt`` — another campaign puts the same
target in the same variant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from campaignkit.core import FAILURE, StepContext, StepResult, StepType

Weight = Annotated[int, Field(strict=True, gt=0)]  # strict: a quoted "3" or a 1.5 is a typo, not a weight


class AbSplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variants: dict[str, Weight] = Field(
        min_length=2, description="Edge label -> weight (a positive whole number), e.g. {a: 1, b: 3}."
    )
    salt: str = Field(
        default="",
        description="Scope of the assignment: campaigns sharing a salt put a target in the same variant. "
                    "Empty: the campaign and node are the scope.",
    )

    @field_validator("variants")
    @classmethod
    def _labels(cls, value: dict[str, int]) -> dict[str, int]:
        if FAILURE in value:
            raise ValueError(f"{FAILURE!r} is the edge taken when a step fails; name the variant otherwise")
        if any(not label.strip() for label in value):
            raise ValueError("variant names must not be empty")
        return value


def assign_variant(variants: Mapping[str, int], scope: str, target_key: str) -> tuple[str, int]:
    """The variant for ``target_key`` and its bucket in [0, total weight).

    Labels are taken in sorted order, so the order they are written in a definition does not matter; the
    arithmetic is on integers, so no rounding can move a target across a boundary.
    """
    digest = hashlib.sha256(f"{scope}\x00{target_key}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % sum(variants.values())
    point = bucket
    for label in sorted(variants):
        if point < variants[label]:
            return label, bucket
        point -= variants[label]
    raise AssertionError("the bucket is below the total weight")


class AbSplit(StepType):
    """ab_split: a weighted, repeatable A/B(/n) split; one edge per variant."""

    name = "ab_split"
    description = "Weighted A/B split by target key; the same target always gets the same variant."
    Config = AbSplitConfig

    def required_edges(self, config: AbSplitConfig) -> set[str]:
        return set(config.variants)

    def execute(self, ctx: StepContext) -> StepResult:
        config: AbSplitConfig = ctx.config
        scope = f"salt:{config.salt}" if config.salt else f"campaign:{ctx.campaign_id}:{ctx.node_id}"
        variant, bucket = assign_variant(config.variants, scope, ctx.target_key)
        return StepResult(
            edge=variant,
            detail={"variant": variant, "bucket": bucket},
            # Templates and branches downstream read it as context.variant_<node id>.
            context_updates={f"variant_{ctx.node_id}": variant},
        )

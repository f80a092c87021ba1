"""The errors of the recipe framework (one base class, :class:`RecipeError`)."""

from __future__ import annotations

from typing import Any


class RecipeError(Exception):
    """Base class of the errors of the recipe framework."""


class ParameterError(RecipeError, ValueError):
    """Parameters given to a recipe are unknown or invalid (the message says which and why)."""


class RecipeInputError(RecipeError, ValueError):
    """An input of a recipe is missing, unknown, or not of its declared kind."""


class UnknownRecipeError(RecipeError, LookupError):
    """No registered recipe has this name (or this version)."""


class RecipeFailed(RecipeError, RuntimeError):
    """A recipe raised while running; ``result`` holds the failed run (log, provenance, error)."""

    def __init__(self, message: str, result: Any) -> None:  # a hcdc.pipeline.recipe.RecipeResult
        super().__init__(message)
        self.result = result

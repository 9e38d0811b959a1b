"""Finds crime reference numbers and normalises them.

The Met writes references as 7 digits, a slash and a 2-digit year (4301234/25);
people type them with spaces, hyphens or after "ref", "CRIS" or "crime number".
Other forces use other formats, so the pattern and output format are config.
"""

from __future__ import annotations

import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from actions.references import DEFAULT_REFERENCE_FORMAT, DEFAULT_REFERENCE_PATTERN

ENTITY = "crime_reference"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class CrimeReferenceExtractor(GraphComponent, EntityExtractorMixin):
    """Regex extractor with a configurable pattern and normalised value."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            # Named groups are joined by `format`; digits may be split by
            # spaces, slashes, hyphens or dots.
            "pattern": DEFAULT_REFERENCE_PATTERN,
            "format": DEFAULT_REFERENCE_FORMAT,
        }

    def __init__(self, config: dict[str, Any]) -> None:
        self._pattern = re.compile(config["pattern"])
        self._format = config["format"]

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> CrimeReferenceExtractor:
        return cls(config)

    def extract(self, text: str) -> list[dict[str, Any]]:
        return [
            {
                "entity": ENTITY,
                "start": match.start(),
                "end": match.end(),
                "value": self._format.format(**match.groupdict()),
                "confidence": 1.0,
                "extractor": self.__class__.__name__,
            }
            for match in self._pattern.finditer(text)
        ]

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            found = self.extract(message.get(TEXT) or "")
            if found:
                others = [e for e in message.get(ENTITIES, []) if e.get("entity") != ENTITY]
                message.set(ENTITIES, others + found, add_to_output=True)
        return messages

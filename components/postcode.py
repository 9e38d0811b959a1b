"""Finds London postcode districts (entity `postcode`) and keeps only the district.

"E8", "se13", "CR0", "EC1A" and a full postcode like "E8 1AB" all give the district
("E8"): the rest of a full postcode is never put in the entity's value. The pattern is
shared with the actions (actions/postcodes.py).
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from actions.postcodes import districts

ENTITY = "postcode"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class PostcodeExtractor(GraphComponent, EntityExtractorMixin):
    """Regex extractor for London postcode districts; the value is the district only."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> PostcodeExtractor:
        return cls()

    @staticmethod
    def extract(text: str) -> list[dict[str, Any]]:
        return [
            {
                "entity": ENTITY,
                "start": start,
                "end": end,
                "value": district,
                "confidence": 1.0,
                "extractor": PostcodeExtractor.__name__,
            }
            for start, end, district in districts(text)
        ]

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            found = self.extract(message.get(TEXT) or "")
            if found:
                others = [e for e in message.get(ENTITIES, []) if e.get("entity") != ENTITY]
                message.set(ENTITIES, others + found, add_to_output=True)
        return messages

"""Safety layer: a rule-based check that overrides the statistical intent.

The intent classifier alone misses indirect danger and self-harm wording, so this
component runs last in the pipeline and applies the shared `safety` patterns (the
same ones the gateway uses). Its verdict is added to every parse result under
`safety`, and a present-danger or self-harm signal sets the intent outright.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from safety import assess, forced_intent


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class SafetyClassifier(GraphComponent, IntentClassifier):
    """Forces `emergency` / `self_harm_risk` when the safety patterns fire."""

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
    ) -> SafetyClassifier:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            assessment = assess(text)
            message.set(
                "safety",
                {
                    "tier": assessment.tier.name.lower(),
                    "kind": assessment.kind,
                    "signals": list(assessment.signals),
                    "lowered_by": list(assessment.lowered_by),
                },
                add_to_output=True,
            )
            forced = forced_intent(assessment)
            if forced is None:
                continue
            previous = message.get(INTENT) or {}
            if previous.get("name") == forced:
                continue
            verdict = {"name": forced, "confidence": 1.0}
            ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get("name") != forced]
            message.set(INTENT, verdict, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [verdict, *ranking], add_to_output=True)
        return messages

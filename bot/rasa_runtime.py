"""`python -m bot.rasa_runtime run …`: Rasa's own server, with two measured hot paths fixed.

Both were found by profiling our Rasa process with py-spy (README "Performance"):

1. Under load, about 60 % of its CPU time went to `RemoteAction._validate_action_result`:
   Rasa 3.6 checks every action server reply with `jsonschema.validate(result, schema)`,
   and that function first validates the *schema itself* against the JSON Schema
   meta-schema (`check_schema`) and builds a new validator, on every call. The reply is
   still validated here, against the same schema and with the same error, by one validator
   built (and its schema checked) once per process.
2. At start, over 80 % of the model loading went to `RasaModel.load` *training* DIET for
   one step (`model.fit`) so that Keras creates every variable, optimizer slots included,
   before the weights are read; the traced training graph then also stays in memory. For
   serving (not fine-tuning) the weights are read first and restored as the prediction
   graph creates its variables (TensorFlow's restore-on-create of object checkpoints);
   the optimizer's slots, which prediction never uses, are left in the file. Predictions
   are the same (tests/test_rasa_runtime.py compares both loads on the same messages).

Everything else is Rasa unchanged: the arguments are `rasa`'s (`run --enable-api …`).
`bot run`, the tests and the benchmark start Rasa through this module (bot/stack.py);
training and `rasa test` use plain `rasa`, which never talks to the action server.
"""

from __future__ import annotations

import functools
from typing import Any

_APPLIED = False


@functools.lru_cache(maxsize=1)
def _action_result_validator() -> Any:  # noqa: ANN401 - a jsonschema validator instance
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)  # what jsonschema.validate does on every call, done once
    return cls(schema)


def _validate_action_result(self: Any, result: dict[str, Any]) -> bool:  # noqa: ANN401
    """Rasa's check of an action server reply, with the validator built once."""
    from jsonschema import ValidationError
    from rasa.shared.constants import DOCS_BASE_URL

    try:
        _action_result_validator().validate(result)
        return True
    except ValidationError as e:  # the same message Rasa gives
        e.message += (
            ". Failed to validate Action server response from API, "
            "make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise e


def _load_for_serving(original: Any) -> Any:  # noqa: ANN401 - a classmethod
    """`RasaModel.load` that skips the one-step training when loading for prediction."""

    def load(cls: Any, model_file_name: str, model_data_example: Any,  # noqa: ANN401
             predict_data_example: Any = None, finetune_mode: bool = False,  # noqa: ANN401
             *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        if finetune_mode or not predict_data_example:
            return original.__func__(cls, model_file_name, model_data_example,
                                     predict_data_example, finetune_mode, *args, **kwargs)
        model = cls(*args, **kwargs)
        status = model.load_weights(model_file_name)
        # building the prediction graph creates the variables; each takes its saved value
        model.run_inference(predict_data_example)
        status.assert_existing_objects_matched()  # every variable prediction uses was read
        status.expect_partial()  # the optimizer's slots stay in the file, on purpose
        return model

    return classmethod(load)


def apply() -> None:
    """Install both fixes in this process (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    from rasa.core.actions.action import RemoteAction
    from rasa.utils.tensorflow.models import RasaModel

    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
    RasaModel.load = _load_for_serving(RasaModel.__dict__["load"])  # type: ignore[method-assign]
    _APPLIED = True


def main() -> None:
    apply()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()

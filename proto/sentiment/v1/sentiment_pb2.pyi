from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PredictRequest(_message.Message):
    __slots__ = ("texts", "model", "version", "explain", "explain_top_k")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_TOP_K_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    model: str
    version: int
    explain: bool
    explain_top_k: int
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., explain: _Optional[bool] = ..., explain_top_k: _Optional[int] = ...) -> None: ...

class WordEffect(_message.Message):
    __slots__ = ("word", "position", "effect", "out_of_vocabulary")
    WORD_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    EFFECT_FIELD_NUMBER: _ClassVar[int]
    OUT_OF_VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    word: str
    position: int
    effect: float
    out_of_vocabulary: bool
    def __init__(self, word: _Optional[str] = ..., position: _Optional[int] = ..., effect: _Optional[float] = ..., out_of_vocabulary: _Optional[bool] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("positive_probability", "label", "model_name", "model_version", "num_tokens", "truncated", "num_out_of_vocabulary", "no_known_words", "explanation", "explanation_note", "arm")
    POSITIVE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    NUM_OUT_OF_VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    NO_KNOWN_WORDS_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_NOTE_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    positive_probability: float
    label: str
    model_name: str
    model_version: int
    num_tokens: int
    truncated: bool
    num_out_of_vocabulary: int
    no_known_words: bool
    explanation: _containers.RepeatedCompositeFieldContainer[WordEffect]
    explanation_note: str
    arm: str
    def __init__(self, positive_probability: _Optional[float] = ..., label: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[int] = ..., num_tokens: _Optional[int] = ..., truncated: _Optional[bool] = ..., num_out_of_vocabulary: _Optional[int] = ..., no_known_words: _Optional[bool] = ..., explanation: _Optional[_Iterable[_Union[WordEffect, _Mapping]]] = ..., explanation_note: _Optional[str] = ..., arm: _Optional[str] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("predictions",)
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("version", "state")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    version: int
    state: str
    def __init__(self, version: _Optional[int] = ..., state: _Optional[str] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("model", "model_name", "versions")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    model_name: str
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    def __init__(self, model: _Optional[str] = ..., model_name: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

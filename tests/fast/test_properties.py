"""Property-based tests: no text or request body breaks tokenization or request parsing."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.gateway.api.sentiment_http import parse_prediction_request
from serving.gateway.errors import GatewayError
from text_contract.tokenizer import FIRST_WORD_ID, Tokenizer, TokenizerContract, split_words

TOKENIZER = Tokenizer(TokenizerContract(vocabulary=tuple(f"w{i}" for i in range(9_997)) + ()))
ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=3_000)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_any_text_gives_in_range_ids_of_length_500(text):
    encoded = TOKENIZER.encode(text)
    assert encoded.ids.shape == (500,) and encoded.ids.dtype == np.int32
    assert encoded.ids.min() >= 0 and encoded.ids.max() < FIRST_WORD_ID + 9_997
    assert encoded.num_tokens == len(split_words(text)) and 0 <= encoded.num_oov <= encoded.num_tokens
    assert encoded.truncated == (encoded.num_tokens + 1 > 500)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["w1", "w2", "zz", "<br />", "'", "don't", "!!", "\x00", "é"]), max_size=800))
def test_words_never_contain_separators(parts):
    for word in split_words(" ".join(parts)):
        assert word and not any(ch in word for ch in " <>/!\x00") and not word.startswith("'")


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_json_body_is_parsed_or_refused_cleanly(body):
    try:
        asked = parse_prediction_request(body)
    except GatewayError as error:
        assert 400 <= error.http_status < 500 and error.message
        return
    assert isinstance(asked.texts, list) and (asked.model is None or isinstance(asked.model, str))
    assert asked.version is None or (isinstance(asked.version, int) and not isinstance(asked.version, bool))

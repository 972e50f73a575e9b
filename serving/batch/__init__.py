"""Scoring a whole corpus offline: an Apache Beam pipeline over an exported model version
(``python -m serving.batch``, the optional ``batch`` extra).

Rows are read from text, CSV or JSON Lines files on any file system Beam supports,
turned into token ids by ``text_contract`` (the gateway's tokenizer), scored by the
version's serving signature through ``RunInference``, and written as the HTTP API's
prediction objects, one per input row; rows that cannot be scored go to a dead-letter
output with the reason.
"""

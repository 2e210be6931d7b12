"""The key under which the NLU's retrieval result travels with a message.

A leaf module: the NLU component (bot/nlu/retrieval.py, which imports Rasa) writes it, the
action server (actions/, which must not import Rasa's NLU stack) and the evaluation read it.
"""

RETRIEVAL = "retrieval"

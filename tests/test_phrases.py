"""The phrase aggregator: where a token stream is cut into speakable phrases."""

from __future__ import annotations

import random

import pytest

from streaming.phrases import PhraseAggregator


def aggregate(
    tokens: list[str],
    max_length: int = 60,
    min_clause_length: int = 20,
    first_clause_length: int | None = None,
) -> list[str]:
    """The phrases of ``tokens``; the first phrase follows the later ones' clause rule unless told."""
    aggregator = PhraseAggregator(max_length, min_clause_length, first_clause_length or min_clause_length)
    phrases = [phrase for token in tokens for phrase in aggregator.push(token)]
    rest = aggregator.flush()
    return phrases + ([rest] if rest else [])


def words_of(text: str) -> list[str]:
    return text.split()


def test_sentence_end_is_cut_once_the_next_character_arrives():
    aggregator = PhraseAggregator(60)
    assert aggregator.push("Hello there.") == []  # could still be "there.5" or "Mr."
    assert aggregator.push(" How") == ["Hello there."]
    assert aggregator.push(" are you?") == []
    assert aggregator.flush() == "How are you?"
    assert aggregator.flush() is None


def test_exclamation_question_ellipsis_and_closing_quotes():
    tokens = ['She said "stop!" and', " left. Really?!", " Well… maybe", " (not).", " End"]
    assert aggregate(tokens) == ['She said "stop!"', "and left.", "Really?!", "Well…", "maybe (not).", "End"]


def test_tokens_split_mid_word():
    assert aggregate(["Hel", "lo wor", "ld.", " Sec", "ond sent", "ence", "."]) == [
        "Hello world.",
        "Second sentence.",
    ]


def test_clause_break_only_past_the_minimum_length():
    tokens = ["Yes, that works; ", "and after a longer clause like this one, ", "we pause: here"]
    assert aggregate(tokens, min_clause_length=20) == [
        "Yes, that works; and after a longer clause like this one,",
        "we pause: here",
    ]


def test_first_phrase_may_end_at_a_short_clause_so_audio_starts_sooner():
    tokens = ["You said: ", "the weather is lovely today, ", "and I want to go for a walk, ", "then home."]
    assert aggregate(tokens, first_clause_length=8) == [
        "You said:",
        "the weather is lovely today,",
        "and I want to go for a walk,",
        "then home.",
    ]
    # Shorter than the first-clause length: it waits for more, as any phrase does.
    sentence = "Well, I think that is right."
    assert aggregate([sentence], first_clause_length=8) == [sentence]


def test_each_reply_starts_with_the_first_phrase_rule_again():
    aggregator = PhraseAggregator(60)
    assert aggregator.push("Of course, here it is. ") == ["Of course,", "here it is."]
    assert aggregator.push("So, one more thing, if") == []
    assert aggregator.flush() == "So, one more thing, if"
    assert aggregator.push("Of course, again. ") == ["Of course,", "again."]


def test_dash_is_a_clause_break_past_the_minimum_length():
    assert aggregate(["I thought about it for a while—then I said yes"]) == [
        "I thought about it for a while—",
        "then I said yes",
    ]


def test_numbers_times_and_thousands_are_not_cut():
    text = "It costs 3.5 dollars or 1,000 cents at 3:05 today. Next"
    assert aggregate(list(text), min_clause_length=5) == [
        "It costs 3.5 dollars or 1,000 cents at 3:05 today.",
        "Next",
    ]


def test_abbreviations_and_initials_stay_whole():
    text = "Mr. Smith met Dr. Jones at 9 a.m. today, e.g. in J. R. Hall. Then they left."
    tokens = [" " + word for word in text.split(" ")]
    assert aggregate(tokens, max_length=200, min_clause_length=100) == [
        "Mr. Smith met Dr. Jones at 9 a.m. today, e.g. in J. R. Hall.",
        "Then they left.",
    ]


def test_a_short_sentence_that_looks_like_an_abbreviation_still_ends():
    assert aggregate(["No.", " That is", " not it."]) == ["No.", "That is not it."]


def test_max_length_cuts_at_the_last_word_boundary():
    text = "one two three four five six seven eight nine ten eleven twelve"
    phrases = aggregate([w + " " for w in text.split()], max_length=20)
    assert phrases == ["one two three four", "five six seven eight", "nine ten eleven", "twelve"]
    assert all(len(p) <= 20 for p in phrases)


def test_word_longer_than_max_length_is_kept_whole():
    tokens = ["a ", "supercalifragilistic", "expialidocious", " word and more"]
    assert aggregate(tokens, max_length=10) == ["a", "supercalifragilisticexpialidocious", "word and", "more"]


def test_long_word_is_not_emitted_before_it_ends():
    aggregator = PhraseAggregator(10)
    assert aggregator.push("incomprehensib") == []
    assert aggregator.push("ilities") == []
    assert aggregator.push(" yes") == ["incomprehensibilities"]
    assert aggregator.flush() == "yes"


def test_whitespace_and_punctuation_only_phrases_are_skipped():
    assert aggregate(["  ", "...", " ", "\n", "Hi.", " — ", " ... ", "\n\n"]) == ["Hi."]
    assert aggregate(["   "]) == []


def test_newline_ends_a_phrase():
    assert aggregate(["First line\nSecond", " line\n\nThird"]) == ["First line", "Second line", "Third"]


def test_flush_resets_for_the_next_reply():
    aggregator = PhraseAggregator(60)
    aggregator.push("Unfinished thought")
    assert aggregator.flush() == "Unfinished thought"
    assert aggregator.push("New reply. ") == ["New reply."]


@pytest.mark.parametrize("seed", range(5))
def test_random_token_splits_never_break_words_or_lose_text(seed):
    text = (
        "Streaming speech feels natural when phrases are short. The aggregator waits for a sentence end, "
        "a clause break past twenty characters, or a word boundary near the limit; it never cuts a word "
        "like extraordinarily-long-hyphenated-compound in two. Mr. Brown agreed, e.g. at 3.5 percent!"
    )
    rng = random.Random(seed)
    tokens, i = [], 0
    while i < len(text):
        step = rng.randint(1, 7)
        tokens.append(text[i : i + step])
        i += step

    phrases = aggregate(tokens, max_length=40)

    assert " ".join(phrases).split() == text.split()
    assert phrases == aggregate([text], max_length=40)
    for phrase in phrases:
        assert phrase == phrase.strip() and phrase
        assert len(phrase) <= 40 or " " not in phrase


def test_invalid_max_length_is_rejected():
    with pytest.raises(ValueError):
        PhraseAggregator(0)

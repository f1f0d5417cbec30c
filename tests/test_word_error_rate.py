"""The word error rate every benchmark and speech test reports: what it counts as the same words."""

from tests.support.speech import normalize_text, word_error_rate


def test_numbers_compare_as_spoken_whether_written_in_digits_or_words():
    assert normalize_text("Go forward 10 meters.") == "go forward ten meters"
    assert normalize_text("A leap year has 366 days.") == normalize_text(
        "A leap year has three hundred and sixty-six days."
    )
    assert normalize_text("In 1455, on the 3rd of May") == "in fourteen fifty five on the third of may"
    assert normalize_text("2,500 people") == "two thousand five hundred people"


def test_an_and_outside_a_number_is_a_word():
    assert normalize_text("a hundred and one") == "a hundred one"
    assert normalize_text("the hundred and the thousand and ten more") == (
        "the hundred and the thousand ten more"
    )
    assert word_error_rate(["bread and butter"], ["bread butter"]) == 1 / 3


def test_case_punctuation_and_apostrophes_do_not_count():
    assert word_error_rate(["I'm Mr. Smith; you're late!"], ["im mister smith youre late"]) == 0
    assert word_error_rate(["one two three four"], ["one too three"]) == 2 / 4


def test_an_accent_is_the_same_letter():
    assert normalize_text("Lübeck, Zürich and the café") == "lubeck zurich and the cafe"
    assert word_error_rate(["printers in Lubeck"], ["printers in Lübeck"]) == 0

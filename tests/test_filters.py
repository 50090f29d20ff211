"""Rule filters: every reason code with cases that flag and cases that do not, English and Chinese."""

import pytest

from vqaflow.quality import filters, text


def flags(question, answer, language=None, max_answer_words=8):
    return filters.flag_pair({"question": question, "answer": answer}, language, max_answer_words)


@pytest.mark.parametrize("answer", [
    "A tall red and white striped lighthouse on the rocks",  # 10 words
    "It was built by the harbour authority in the year 1890",
    "The lighthouse, which stands on a granite rock, was built in 1890",  # not a list: items too long
    "这座灯塔是在一八九零年由港口管理局建造的",  # 20 Han characters
])
def test_long_answer(answer):
    assert "long_answer" in flags("What is it?", answer)


@pytest.mark.parametrize("answer", [
    "1890",
    "the Statue of Liberty",
    "don't know yet, but well-known",
    "1,234,567 visitors",
    "Paris, Lyon, Marseille, Toulouse, Nice, Nantes, Strasbourg",  # a list: measured per item
    "中华人民共和国",
    "埃菲尔铁塔",
    "十九世纪末的法国巴黎",  # 10 characters: within 12
])
def test_not_long_answer(answer):
    assert "long_answer" not in flags("What is it?", answer)


def test_long_answer_limit_is_configurable():
    assert flags("What is it?", "one two three", max_answer_words=2) == ["long_answer"]
    assert flags("What is it?", "one two", max_answer_words=2) == []
    assert text.word_count("红色的灯塔") == 4  # 5 characters / 1.5, rounded up
    assert text.word_count("the 红色 lighthouse") == 4


@pytest.mark.parametrize("answer", ["red and white", "Red or blue", "rock & roll", "tea and/or coffee",
                                    "AND so on", "红色和白色", "红色或蓝色", "猫与狗", "红色或者蓝色", "苹果以及香蕉"])
def test_and_or(answer):
    assert "and_or" in flags("What colours?", answer)


@pytest.mark.parametrize("answer", ["red, white", "Anderson", "Oregon", "brandy", "orange", "Rand",
                                    "中华人民共和国", "和平", "参与者", "或许", "埃及", "红色"])
def test_not_and_or(answer):
    assert "and_or" not in flags("What colours?", answer)


@pytest.mark.parametrize("question, answer", [
    ("What is the Red Lighthouse painted?", "red lighthouse"),
    ("What colour is the red car?", "Red."),
    ("Which city, Paris, is shown?", "paris"),
    ("Which colours, red and white, appear?", "red, white"),
    ("图中红色的灯塔是什么颜色？", "红色"),
])
def test_answer_in_question(question, answer):
    assert "answer_in_question" in flags(question, answer)


@pytest.mark.parametrize("question, answer", [
    ("What colour is the car?", "red"),
    ("What is the capital of France?", "Par"),  # not a whole word of the question
    ("Is the light on?", "yes"),
    ("Which is taller, the tree or the tower?", "the tower"),  # a choice question
    ("灯塔是红色的还是白色的？", "红色"),  # a choice question
    ("灯塔是什么颜色？", "红色"),
    ("Which colours, red and white, appear?", "red, blue"),
])
def test_not_answer_in_question(question, answer):
    assert "answer_in_question" not in flags(question, answer)


@pytest.mark.parametrize("question", [
    "The lighthouse is red.",
    "This image shows a bowl of fruit",
    "In the picture, the sign says stop.",
    "",
    "灯塔是红色的。",
    "图中有一个碗",
    "According to the article the tower is red.",  # a preposition with no interrogative after it
    "这段描述是正确的。",  # 描述 as a noun, not a request opening the sentence
])
def test_not_a_question(question):
    assert "not_a_question" in flags(question, "x")


@pytest.mark.parametrize("question", [
    "What colour is the lighthouse?",
    "what colour is the lighthouse",  # no mark, interrogative start
    "How many apples are in the bowl",
    "Is the sign red",
    "Name the fruit in the bowl.",
    "In which year was it built",
    "According to the article, when was the tower built",
    "The tower was built when?",
    "灯塔是什么颜色",
    "这是红色的吗",
    "灯塔是红色的？",
    "灯塔有多高",
    "Isn't the sky blue",  # a negative auxiliary, no mark
    "What's the colour of the car",
    "Describe the sky",
    "列出图中的物体",  # an imperative: "list the objects"
    "请描述天空",
])
def test_is_a_question(question):
    assert "not_a_question" not in flags(question, "x")


@pytest.mark.parametrize("question, answer, language", [
    ("What colour is the lighthouse?", "红色", "en"),
    ("灯塔是什么颜色？", "red", "en"),
    ("What colour is the lighthouse?", "red", "zh"),  # an English question in a Chinese dataset
    ("灯塔是什么颜色？", "It is painted red and white", "zh"),  # more than 3 Latin words
    ("Какого цвета маяк?", "красный", "en"),
    ("What colour is it?", "rot", "ru"),
])
def test_wrong_language(question, answer, language):
    assert "wrong_language" in flags(question, answer, language)


@pytest.mark.parametrize("question, answer, language", [
    ("What colour is the lighthouse?", "red", "en"),
    ("What does the sign say?", "1890", "en"),
    ("What is the name of the café?", "Café Müller", "en"),
    ("灯塔是什么颜色？", "红色", "zh"),
    ("灯塔是什么颜色？", "红色", "zh-CN"),
    ("图中的STOP标志是什么颜色？", "红色", "zh"),  # Latin letters, mostly Han
    ("标志上写着什么？", "STOP", "zh"),  # text read off the image
    ("这座塔叫什么名字？", "Eiffel Tower", "zh"),
    ("What colour is the lighthouse?", "红色", None),  # no language set: no check
    ("Какого цвета маяк?", "красный", "ru"),
])
def test_not_wrong_language(question, answer, language):
    assert "wrong_language" not in flags(question, answer, language)


def test_unknown_language_is_an_error():
    with pytest.raises(ValueError, match="unknown language"):
        flags("What?", "x", "klingon")


def test_duplicate_question_in_a_record():
    qas = [
        {"question": "What colour is the lighthouse?", "answer": "red"},
        {"question": "How tall is it?", "answer": "30 m"},
        {"question": "what colour is the  lighthouse ?", "answer": "white"},
        {"question": "灯塔是什么颜色？", "answer": "红色"},
        {"question": "灯塔是什么颜色?", "answer": "白色"},
    ]
    assert filters.flag_record(qas, None, 8) == [[], [], ["duplicate_question"], [], ["duplicate_question"]]


def test_flags_come_together_in_a_fixed_order():
    assert flags("The red and white tower is a landmark.", "red and white", "en") == [
        "and_or", "answer_in_question", "not_a_question"]
    assert set(filters.FLAGS) == {"long_answer", "and_or", "answer_in_question", "not_a_question",
                                  "wrong_language", "duplicate_question"}


def test_clean_pair_has_no_flags():
    assert filters.flag_record([{"question": "In which year was the tower shown built?", "answer": "1890"}],
                               "en", 8) == [[]]


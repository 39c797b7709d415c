"""clip_edge.text_cleaning.TextCleaner alone against OpenAI's cleaning as open_clip ships it: basic_clean
(ftfy.fix_text, html.unescape twice, strip), whitespace_clean and str.lower; its tables
(clip_edge.text_cleaning_tables) against ftfy's and html.unescape."""

import html
import re
import unicodedata

import ftfy
import ftfy.chardata
import pytest
import tensorflow as tf

from tests.tokenizer_corpus import (MOJIBAKE_NOT_REPAIRED, STRESS_TEXTS, documentation_corpus, load_reference_module,
                              mojibake_probe_texts, mojibake_texts)

from clip_edge import text_cleaning_tables
from clip_edge.text_cleaning import TextCleaner


@pytest.fixture(scope="module")
def cleaner():
    return TextCleaner()


@pytest.fixture(scope="module")
def reference_clean():
    """What open_clip's SimpleTokenizer (clean="lower") does to a text before pre-tokenisation."""
    module = load_reference_module()
    return lambda text: module.whitespace_clean(module.basic_clean(text)).lower()


def cleaned(cleaner, texts):
    return [t.decode("utf-8") for t in cleaner(texts).numpy()]


def differing(cleaner, reference_clean, texts):
    return [(t, ours, reference_clean(t)) for t, ours in zip(texts, cleaned(cleaner, texts))
            if ours != reference_clean(t)]


# --- tables ----------------------------------------------------------------------------------------------------

# The character tables are built from the standard library; ftfy builds its own. They must agree.
def test_character_tables_match_ftfy():
    assert text_cleaning_tables.ftfy_html_entities() == ftfy.chardata.HTML_ENTITIES
    assert {ord(k): v for k, v in text_cleaning_tables.LATIN_LIGATURES.items()} == ftfy.chardata.LIGATURES
    late = text_cleaning_tables.ftfy_late_character_fixes()
    assert {ord(c) for c, v in late.items() if v == ""} == set(ftfy.chardata.CONTROL_CHARS)
    # Every code point through ftfy's four fixes at once; "\n" separates them and none of the fixes touch it.
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and c != 0x0A]
    fixed = ftfy.fixes.uncurl_quotes(ftfy.fixes.fix_character_width(
        ftfy.fixes.fix_latin_ligatures(ftfy.fixes.fix_c1_controls("\n".join(chars))))).split("\n")
    early = text_cleaning_tables.ftfy_character_fixes()
    assert [early.get(c, c) for c in chars] == fixed
    assert set(text_cleaning_tables.PYTHON_WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}


def test_numeric_reference_rules_match_html_unescape():
    # The rules written from the HTML5 specification give what html.unescape gives for "&#n;", every n.
    replacements = text_cleaning_tables.html_charref_replacements()
    dropped = set(text_cleaning_tables.html_dropped_code_points())
    assert len(dropped) == len(text_cleaning_tables.html_dropped_code_points())

    def rule(number):
        if number in replacements:
            return replacements[number]
        if 0xD800 <= number <= 0xDFFF or number > 0x10FFFF:
            return "\ufffd"
        return "" if number in dropped else chr(number)

    numbers = [*range(0x110000), 0x110000, 0x10FFFFF, 10**12]
    wrong = [n for n in numbers if rule(n) != html.unescape(f"&#{n};")]
    assert not wrong, [hex(n) for n in wrong[:20]]


def test_mojibake_heuristic_and_code_pages_like_ftfy():
    # The character classes are ftfy's, the RE2 pattern finds mojibake where ftfy's is_bad does (every pair of
    # the characters it involves and random strings of them), and the code pages decode bytes as ftfy's codecs.
    import ftfy.bad_codecs  # noqa: F401  (registers the sloppy codecs)
    import ftfy.badness

    def expand(python_class):
        pattern = re.compile(f"[{python_class}]")
        return {chr(c) for c in range(0x10000) if pattern.fullmatch(chr(c))}

    classes = {name: text_cleaning_tables.class_chars(spec)
               for name, spec in text_cleaning_tables.MOJIBAKE_CLASSES.items()}
    assert classes == {name: expand(spec) for name, spec in ftfy.badness.MOJIBAKE_CATEGORIES.items()}
    clues = text_cleaning_tables.utf8_clue_classes()
    assert clues == {name: expand(ftfy.chardata.UTF8_CLUES["utf8_" + name]) for name in clues}
    assert text_cleaning_tables.MOJIBAKE_ENCODINGS == tuple(ftfy.chardata.CHARMAP_ENCODINGS)
    for encoding in text_cleaning_tables.MOJIBAKE_ENCODINGS:
        assert "".join(text_cleaning_tables.single_byte_chars(encoding)) == bytes(range(256)).decode(encoding)

    texts = mojibake_probe_texts(classes.values(), 50000, seed=0)
    pattern = "(?s).*(?:" + text_cleaning_tables.mojibake_pattern() + ").*"
    ours = tf.strings.regex_full_match(tf.constant([t.encode("utf-8") for t in texts]), pattern).numpy()
    wrong = [t for t, bad in zip(texts, ours) if bool(bad) != ftfy.badness.is_bad(t)]
    assert not wrong, wrong[:20]


# --- the cleaning, text for text ---------------------------------------------------------------------------------

def test_every_code_point_like_reference(cleaner, reference_clean):
    # ftfy, html.unescape, whitespace, lowercasing and NFC (here composing with a following acute accent) of
    # every assigned code point.
    texts = [f"{chr(c)}\u0301 A{chr(c)}" for c in range(0x110000)
             if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) != "Cn"]
    wrong = differing(cleaner, reference_clean, texts)
    assert not wrong, [f"U+{ord(t[0]):04X}" for t, _, _ in wrong[:20]]


def test_texts_like_reference(cleaner, reference_clean):
    # The stress texts (entities, ligatures, controls, Unicode spaces, mojibake of many kinds), lines mixing
    # words garbled by different wrong decodings, and real documentation lines.
    garbled = mojibake_texts(300, seed=11)
    assert sum(ftfy.fix_text(t) != ftfy.fix_text(t, fix_encoding=False) for t in garbled) > 250
    texts = STRESS_TEXTS + garbled + documentation_corpus(packages=False)[::20]
    wrong = differing(cleaner, reference_clean, texts)
    assert not wrong, wrong[:5]


def test_numeric_references_like_reference(cleaner, reference_clean):
    # The numbers html.unescape treats specially and their neighbours, decimal and hexadecimal, with and without
    # ";", as ftfy's unescaping, then html.unescape twice, see them.
    numbers = sorted({*range(0x00, 0xA1), *text_cleaning_tables.html_dropped_code_points(), 0xD7FF, 0xD800, 0xDBFF,
                      0xDC00, 0xDFFF, 0xE000, 0xFDCF, 0xFDF0, 0xFFFD, 0x10FFFF, 0x110000, 0x7FFFFFFF, 10**8, 10**12})
    texts = [f"a&#{n};b&#x{n:X};c&#{n}d&#x{n:x}" for n in numbers]
    texts += [f"&amp;#{n}; &#38;#x{n:x};" for n in numbers[::7]]  # unescaped to a reference, then that one
    wrong = differing(cleaner, reference_clean, texts)
    assert not wrong, wrong[:5]


def test_unreproduced_mojibake_is_left_as_written(cleaner, reference_clean, monkeypatch):
    # docs/tokenizer.md: the repairs that need ftfy's utf-8-variants codec are not made; everything else is.
    ours = cleaned(cleaner, MOJIBAKE_NOT_REPAIRED)
    assert all(o != reference_clean(t) for o, t in zip(ours, MOJIBAKE_NOT_REPAIRED))
    monkeypatch.setattr(ftfy, "fix_encoding", lambda text, *args, **kwargs: text)
    assert ours == [reference_clean(t) for t in MOJIBAKE_NOT_REPAIRED]


# --- inputs ------------------------------------------------------------------------------------------------------

def test_input_forms(cleaner, reference_clean):
    assert cleaned(cleaner, "  Ａ&amp;B  ") == [reference_clean("  Ａ&amp;B  ")] == ["a&b"]
    texts = ["Fish &amp; Chips", "ﬁne\tLINE\r\n", b"caf\xc3\xa9".decode("utf-8")]
    assert cleaned(cleaner, texts) == cleaned(cleaner, tf.constant([t.encode("utf-8") for t in texts]))
    assert cleaned(cleaner, texts) == [reference_clean(t) for t in texts]
    for empty in ([], tf.constant([], tf.string)):
        out = cleaner(empty)
        assert out.shape == (0,) and out.dtype == tf.string


def test_invalid_utf8_and_surrogates_like_reference(cleaner, reference_clean):
    raw = [b"\xff", b"caf\xe9 au lait", b"\xe2\x82", b"\xf0\x9f\x98 cut emoji", b"\xed\xa0\x80", b"a\x80b"]
    assert cleaned(cleaner, tf.constant(raw)) == [reference_clean(t.decode("utf-8", errors="replace")) for t in raw]
    texts = ["\ud83d\ude00 split pair", "lone \ud800 high", "\udc00 low first", "x\ud83d\ude00\ud83d"]
    assert cleaned(cleaner, texts) == [reference_clean(t) for t in texts]


@pytest.mark.parametrize("texts, message", [
    (["ok", None], r"texts\[1\] is NoneType"),
    ([b"caf\xe9"], r"texts\[0\] is not valid UTF-8"),
    (tf.constant([["a", "b"]]), r"shape \[N\]"),
    (tf.constant([1, 2]), "tf.string"),
])
def test_bad_input_is_named(cleaner, texts, message):
    with pytest.raises(ValueError, match=message):
        cleaner(texts)


def test_graph_has_no_python_ops(cleaner):
    # Only TensorFlow and tensorflow-text ops, so that the cleaner runs in a SavedModel (test_tokenizer.py saves
    # and runs one) without Python.
    graph = cleaner._traced.function.get_concrete_function().graph
    op_types = {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:
        op_types |= {node.op for node in function.node_def}
    assert "RegexSplitWithOffsets" in op_types and "StaticRegexReplace" in op_types
    assert not op_types & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}


def test_a_saved_model_holding_the_cleaner_saves_no_second_graph(cleaner, tmp_path):
    # CLIPTokenizer holds a cleaner; its SavedModel should hold the cleaning graph once, inside the signatures.
    from tensorflow.core.protobuf import saved_model_pb2

    module = tf.Module()
    module.cleaner = cleaner
    tf.saved_model.save(module, str(tmp_path))
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((tmp_path / "saved_model.pb").read_bytes())
    graph_def = saved.meta_graphs[0].graph_def
    op_types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        op_types |= {node.op for node in function.node_def}
    assert "LookupTableImportV2" in op_types  # the tables are saved
    assert not op_types & {"StaticRegexReplace", "RegexSplitWithOffsets", "While", "StatelessWhile"}

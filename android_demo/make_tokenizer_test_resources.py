"""Writes the test resources of android_demo/clip's tokenizer JUnit tests (src/test/resources/dev/clipedge/clip/text/):

    PYTHONPATH=. .venv/bin/python android_demo/make_tokenizer_test_resources.py

- tokenizer_golden.jsonl: {"text", "ids"} per line, ids from OpenAI's reference tokenizer (open_clip's
  SimpleTokenizer with ftfy, tests/tokenizer_corpus.load_reference_tokenizer), start to end token, no padding.
- text_cleaner_golden.jsonl: {"text", "cleaned"} per line, the reference's own cleaning function
  (open_clip's _clean_lower: ftfy.fix_text, html.unescape twice, whitespace collapsed, lowercased).
- text_cleaning.json: CLIPTokenizer.text_cleaning_tables() for OpenAI's vocabulary (clip_edge.text_cleaning_tables'
  cleaning_tables() and the tokenizer's pre-tokenisation), as an export writes it
  (tests/test_jvm_tokenizer.py checks that the committed copy is current).

Texts whose reference result the SavedModel does not reproduce (docs/tokenizer.md: MOJIBAKE_NOT_REPAIRED) are left
out: the Java tokenizer follows the SavedModel.
"""

import json
import os

from tests.tokenizer_corpus import (STRESS_TEXTS, documentation_corpus, load_reference_module,
                                    load_reference_tokenizer, mojibake_texts)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RESOURCES = os.path.join(REPO, "android_demo", "clip", "src", "test", "resources", "dev", "clipedge", "clip", "text")

CLEANER_TEXTS = [
    # Mojibake: UTF-8 read as Latin-1 / Windows-1252, doubly, in part of a line, MacRoman, Windows-1251.
    "sÃ³ mojibake Ã©tÃ©", "â€œquotedâ€\x9d and doesnâ€™t", "Ã\x83Â© Ã\x83Â¨", "naïve café — Ã© only in part",
    "it‚Äôs MacRoman", "Ð\x9fÑ\x80Ð¸Ð²ÐµÑ\x82", "voilÃ le travail", "Ãx naïve Ærøskøbing",
    # HTML entities: ftfy's, then html.unescape twice; a "<" line stops ftfy's but not html.unescape's.
    "Fish &amp; chips &lt;3 &EACUTE; &ampfoo &#150; &#0; &#x110000; &amp;amp;lt;",
    "<b>x</b> &rsquo;kept curly&rsquo; &amp;",
    # Whitespace: Unicode spaces, tabs, CR LF, line separators, leading and trailing.
    "  non\u00a0breaking\u2003em\u3000ideographic\t\ttab\r\nCRLF\u2028LS  ", "\t\n\r ",
    # Case: final sigma, dotted capital I, ligatures, full width, Unicode 14 letters.
    "ΟΔΥΣΣΕΥΣ ΣΑΣ", "İstanbul ẞ ǅ KELVIN\u212a", "ﬁnancial ＦＵＬＬ", "\u2c2f\ua7c0",
    # Control characters, terminal escapes, NFC.
    "bell\x07 esc\x1b[31mred\x1b[0m \ufeffbom", "cafe\u0301 A\u030angstro\u0308m",
]


def write_lines(name, rows):
    with open(os.path.join(RESOURCES, name), "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main():
    from clip_edge.tokenizer import CLIPTokenizer

    os.makedirs(RESOURCES, exist_ok=True)
    reference = load_reference_tokenizer()
    corpus = documentation_corpus()
    texts = STRESS_TEXTS + mojibake_texts(40, seed=7) + corpus[::400]
    ids = reference(texts).numpy()
    rows = []
    for text, row in zip(texts, ids):
        end = len(row) - 1 - list(row[::-1]).index(reference.eot_token_id)
        rows.append({"text": text, "ids": [int(i) for i in row[:end + 1]]})
    write_lines("tokenizer_golden.jsonl", rows)
    clean = load_reference_module()._clean_lower
    write_lines("text_cleaner_golden.jsonl", [{"text": t, "cleaned": clean(t)} for t in CLEANER_TEXTS])
    tables = CLIPTokenizer.from_openai_vocabulary().text_cleaning_tables()
    with open(os.path.join(RESOURCES, "text_cleaning.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(tables, ensure_ascii=False, separators=(",", ":")))
    print(f"wrote {len(rows)} tokenizer and {len(CLEANER_TEXTS)} cleaner cases and text_cleaning.json to {RESOURCES}")


if __name__ == "__main__":
    main()

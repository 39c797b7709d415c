"""Reference tokenizer and test texts for tokenizer parity (tests/test_tokenizer.py, test_text_cleaning.py,
test_jvm_tokenizer.py, benchmarks/bench_tokenizer.py, bench_jvm_tokenizer.py).

The documentation corpus is a committed file, tests/data/tokenizer_corpus.jsonl (documentation_corpus reads it),
so that every machine tokenizes the same texts; write_documentation_corpus wrote it (python tests/tokenizer_corpus.py).

The reference is OpenAI's tokenizer as open_clip ships it (open_clip/tokenizer.py, SimpleTokenizer with ftfy).
open_clip's package __init__ imports torchvision, which is not installable here, so the module is loaded from
its file path without importing the package.
"""

import importlib.metadata
import importlib.util
import json
import pathlib

import pydoc_data.topics


def open_clip_file(name):
    """Path of a file of the installed open_clip package, found without importing the package."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        raise RuntimeError("open_clip is not installed: pip install --no-deps open_clip_torch==3.3.0")
    return pathlib.Path(spec.submodule_search_locations[0]) / name


def load_reference_module():
    """open_clip/tokenizer.py as a module: SimpleTokenizer, and the cleaning functions basic_clean and
    whitespace_clean it applies (with str.lower) before pre-tokenisation."""
    module_spec = importlib.util.spec_from_file_location("open_clip_reference_tokenizer",
                                                         open_clip_file("tokenizer.py"))
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def load_reference_tokenizer():
    """open_clip's SimpleTokenizer() with its defaults (context 77, truncation keeping the end token)."""
    return load_reference_module().SimpleTokenizer()


# The parity corpus, committed (tests/data/): one JSON object per line, {"source", "text"}; JSON keeps every
# text exactly (newlines, control characters, line separators, any Unicode). Tests only read it;
# write_documentation_corpus made it and can remake it.
CORPUS_FILE = pathlib.Path(__file__).absolute().parent / "data" / "tokenizer_corpus.jsonl"
PYDOC_SOURCE = "pydoc_data.topics"


def documentation_corpus(packages=True):
    """Real documentation text, read from CORPUS_FILE: every distinct line of Python's documentation topics
    (pydoc_data), then, with `packages`, lines of installed packages' descriptions (their METADATA). Lines keep
    their indentation and markup; no duplicates."""
    with open(CORPUS_FILE, encoding="utf-8", newline="") as file:
        rows = [json.loads(line) for line in file.read().split("\n") if line]
    return [row["text"] for row in rows if packages or row["source"] == PYDOC_SOURCE]


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def write_documentation_corpus(path=CORPUS_FILE, max_package_lines=4000):
    """Writes the corpus from this Python's pydoc_data and the packages installed here (which is why the tests
    read the written file instead: what is installed differs from machine to machine):

        PYTHONPATH=. .venv/bin/python tests/tokenizer_corpus.py

    Package lines come in the order of the packages' names, up to `max_package_lines` before duplicates are
    dropped; this project's own METADATA (an editable install of clip_edge) is left out."""
    rows = [(PYDOC_SOURCE, line) for line in
            _lines("\n".join(pydoc_data.topics.topics[name] for name in sorted(pydoc_data.topics.topics)))]
    package_rows = []
    for dist in sorted(importlib.metadata.distributions(), key=lambda d: (d.metadata["Name"] or "").lower()):
        if dist.metadata["Name"] != "clip_edge":
            source = f"{dist.metadata['Name']} {dist.version} METADATA"
            package_rows += [(source, line) for line in _lines(dist.read_text("METADATA") or "")]
    rows += package_rows[:max_package_lines]
    texts = {}
    for source, text in rows:
        texts.setdefault(text, source)
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        for text, source in texts.items():
            file.write(json.dumps({"source": source, "text": text}, ensure_ascii=False) + "\n")
    return len(texts)


LONG_TEXT = " ".join(["The quick brown fox jumps over the lazy dog, again and again;"] * 20)

STRESS_TEXTS = [
    # Curly quotes and apostrophes (ftfy straightens them; transformers' tokenizers do not).
    "“Hello,” she said. ‘It’s fine’ — isn’t it?",
    "don’t won’t I’ve you’re we’ll he’d I’m ‚low‘ „low“ ‛rev‟",
    "ʼn Afrikaans ʼapostrophe",
    # HTML entities, named and numeric, nested, with and without semicolons.
    "Fish &amp; chips &lt;3 &gt; &quot;quoted&quot; a&nbsp;b &#39;single&#39; &#x27;hex&#x27;",
    "&amp;amp;amp; &amp;lt;b&amp;gt; &ampfoo &notit; &notin; &copy2024 &AMP; &EACUTE; &Eacute; &eacute",
    "&#0; &#128; &#150; &#x110000; &#xD800; &#65; &#x41; &#X41; &#0065; &#59; &#99999999999; &#x; &#;",
    "&rsquo;curly&rsquo; &ldquo;double&rdquo; &hellip; &mdash; &fflig; &frac12; &unknown; & alone &",
    "<b>bold</b> &amp; escaped line\nnext &amp; line",
    "no tag &amp; here\n<p>tag &amp; line</p>\nafter &amp; tag",
    "&rsquo;head&rsquo; is uncurled\n<i>x</i> &rsquo;tail&rsquo; stays curly\r\n&amp;rsquo; &#8220;num&#8221;",
    # Ligatures and full-width forms.
    "ﬁnancial ﬂow ﬀ ﬃ ﬄ ﬅ ﬆ Ĳssel ĳs ǅ ǈ ǋ Ǳ",
    "ＦＵＬＬ　ＷＩＤＴＨ　ｔｅｘｔ　１２３！？ ｶﾀｶﾅ ￥￦",
    # Combining accents (NFD input) and precomposed.
    "cafe\u0301 na\u0308ive re\u0301sume\u0301 Ångström A\u030angstro\u0308m",
    "e\u0301\u0301\u0323 o\u0308\u0304 \u0301leading combining",
    # CJK, Arabic, Cyrillic, Greek, Hebrew, Devanagari, Thai.
    "日本語のテキスト、中文文本。한국어 텍스트",
    "مرحبا بالعالم ١٢٣ ٤٥٦",
    "Привет, мир! ЁЖИК Ёжик",
    "ΟΔΥΣΣΕΥΣ Ὀδυσσεύς ΣΊΣΥΦΟΣ",
    "ᾳ α\u0345 a\u0345b \u0345 x\u0345\u0345y",  # U+0345: the reference's IGNORECASE pattern skips it
    "שלום עולם नमस्ते दुनिया สวัสดีชาวโลก",
    # Emoji: skin tones, ZWJ sequences, flags, keycaps, variation selectors.
    "👍🏽 👩🏾‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 1️⃣ ❤️ ☺︎",
    "emoji😀in😀words and 🤷‍♀️shrug",
    # Control characters, tabs, CRLF, line and paragraph separators, terminal escapes.
    "bell\x07 null\x00 esc\x1b[31mred\x1b[0m del\x7f unit\x1f sep\x1c",
    "tabs\tand\t\ttabs\r\nCRLF\rCR\nLF\u2028LS\u2029PS\x85NEL\x0bVT\x0cFF",
    "c1 \x80 \x93quoted\x94 \x81 \x9d \x96dash",
    "\ufeffbom in front and \ufeffinside \u206a\u206f \ufff9anchor\ufffb",
    # Non-breaking and other Unicode spaces, zero-width characters.
    "non\u00a0breaking\u202fnarrow\u2007figure\u3000ideographic\u2003em\u1680ogham",
    "zero\u200bwidth\u200cnon\u200djoiner\u2060wj\u00adsoft",
    # Special-token strings inside text.
    "<start_of_text>inside<end_of_text> <START_OF_TEXT> <|startoftext|> <|endoftext|> <end_of_text",
    "<ſtart_of_text> 'ſ 'S 'T 'RE 'Ll 'D",
    # Case mapping corner cases.
    "İstanbul ıi ß ẞ ǅ ΣΑΣ KELVIN\u212a Ω\u2126 ﬃ",
    # Digits and punctuation runs.
    "3.14159 1,000,000 ٣٤ ²³ ½ Ⅻ 0x1F --- ... ?!?! (parens) [brackets] {braces}",
    # Empty and whitespace-only.
    "",
    " ",
    "\t\n\r ",
    "\u00a0\u3000\u2028",
    # Longer than 77 tokens, with and without spaces.
    LONG_TEXT,
    "a" * 500,
    "🙂" * 200,
    "supercalifragilisticexpialidocious" * 10,
    # Replacement characters and private use.
    "\ufffd replacement \ue000 private \U000f0000",
    # Text near mojibake that ftfy leaves alone: Latin-1 letters that do not spell UTF-8 byte sequences.
    "Ãx naïve Ærøskøbing ¡olé! ©®±µ¶·",
    # Mojibake (UTF-8 decoded as a single-byte code page), which ftfy's fix_encoding repairs: Latin-1 and
    # Windows-1252, doubly encoded, C1 controls, a lost byte (U+FFFD), a space for byte A0, MacRoman,
    # Windows-1251, only part of a line (decode_inconsistent_utf8), per line, next to HTML and CR LF.
    "sÃ³ mojibake Ã©tÃ©",
    "Ã©",
    "SchÃ¶n",
    "â€œquotedâ€\x9d and doesnâ€™t",
    "The Mona Lisa doesnÃƒÂ¢Ã¢â€šÂ¬Ã¢â€žÂ¢t have eyebrows.",
    "Ã\x83Â© Ã\x83Â¨",
    "âœ” No problems",
    "Ð\x9fÑ\x80Ð¸Ð²ÐµÑ\x82 Ð¼Ð¸Ñ\x80",
    "â€œ like this â€\ufffd",
    "voilÃ le travail, Ã¡ Ã\xa0 quelle",
    "it‚Äôs MacRoman",
    "вЂ” Windows-1251",
    "naïve café — Ã© only in part",
    "line one Ã©\nligne deux café —\nÃ\x83Â©",
    "<b>Ã©</b> &amp; Ã©tÃ©\r\nÃ©",
    "&macr;\\_(ã\x83\x84)_/&macr;",
    "ðŸ˜€ emoji and ðŸ‘\x8d",
]

# Mojibake whose repair is not reproduced in the graph (docs/tokenizer.md): CESU-8 (surrogates encoded one by one),
# which ftfy decodes with its own "utf-8-variants" codec. These texts are left as they are.
MOJIBAKE_NOT_REPAIRED = [
    "cesu í\xa0½í¸€ emoji",
]


def mojibake_probe_texts(classes, count, seed):
    """Texts for checking a mojibake detector character by character: every pair, then `count` random strings of
    3 to 6, over the characters of ftfy's mojibake `classes` (sets of characters) plus letters that typical
    mojibake is made of and a few plain ones (ASCII, whitespace, a digit, a combining mark)."""
    import random

    alphabet = sorted(set().union(*classes) | set("ÂÃÎÐŒœ°ŸŠ®µ»à¹√∂†≠™´¥ø≈‚ÄìîïòôúùûπâóäêвЂВГРСўβ€ΆΒΓΞΟā")
                      | set("aZz.,?!_ \n\t1\u2003\u0663\u0301"))
    rng = random.Random(seed)
    texts = [a + b for a in alphabet for b in alphabet]
    return texts + ["".join(rng.choice(alphabet) for _ in range(rng.randint(3, 6))) for _ in range(count)]


def mojibake_texts(count, seed=0):
    """Lines mixing plain words with words made mojibake by one or two wrong decodings (Latin-1, Windows-1252,
    Windows-1251, MacRoman), so that parts of a line need different repairs."""
    import random

    rng = random.Random(seed)
    words = ["café", "naïve", "Schön", "señor", "“quoted”", "it’s", "—", "…", "€5", "Ελληνικά", "Привет", "日本語",
             "😀", "½", "Zürich", "façade", "ação", "Łódź", "İstanbul", "ﬁne", "a", "the", "and", "©", "™", "•",
             "«»", "\u00a0", "x", "é"]

    def garble(text, code_page):
        return text.encode("utf-8").decode(code_page, errors="strict" if code_page == "latin-1" else "replace")

    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 6)):
            part, draw = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3))), rng.random()
            if draw < 0.3:
                part = garble(part, "latin-1")
            elif draw < 0.6:
                part = garble(part, "cp1252")
            elif draw < 0.7:
                part = garble(garble(part, "cp1252"), "cp1252")
            elif draw < 0.75:
                part = garble(part, "cp1251")
            elif draw < 0.8:
                part = garble(part, "mac_roman")
            parts.append(part)
        texts.append(rng.choice([" ", "\n", " ", ""]).join(parts))
    return texts


if __name__ == "__main__":
    print(f"{write_documentation_corpus()} texts written to {CORPUS_FILE}")

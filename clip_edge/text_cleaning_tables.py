"""The tables and patterns of OpenAI CLIP's text cleaning, as data: ftfy's character fixes and HTML entities,
html.unescape's numeric character references, ftfy's mojibake heuristic and code pages, their RE2 spellings, and the
Unicode tables of the graph's own ops.

clip_edge.text_cleaning.TextCleaner builds its graph from them; cleaning_tables() writes them as JSON-able data (the
export's assets/text_cleaning.json) for cleaners outside TensorFlow (android_demo's Java TextCleaner), so that both
follow one definition of each rule. They are built from the standard library, ftfy's rules as written here and, for
the Unicode data the graph relies on (RE2's classes, lowercasing, NFC), TensorFlow's ops run on every code point.
docs/tokenizer.md describes the JSON format.
"""

import functools
import html
import html.entities
import json
import re
import unicodedata

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text


# --- RE2 spellings (also of CLIPTokenizer's pre-tokenisation pattern) --------------------------------------------

def re2_chars(chars):
    """The inside of an RE2 class holding `chars`, each escaped."""
    return "".join(f"\\x{{{ord(c):x}}}" for c in sorted(chars))


def re2_alternatives(words):
    # Longest first: RE2 alternation is leftmost-first, so this picks the longest alternative that matches.
    escaped = (re2_escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))
    return "(?:" + "|".join(escaped) + ")"


def re2_escape(text):
    """`text` as an RE2 pattern matching it literally."""
    return "".join(c if c.isalnum() and c.isascii() else f"\\x{{{ord(c):x}}}" for c in text)


# --- What ftfy.fix_text does to ordinary text, as data built from the standard library -------------------------

# str.isspace: what the reference's str.strip() and " ".join(text.split()) treat as whitespace. It is a superset
# of the `regex` module's \s used by the pre-tokenisation pattern (it adds U+001C..U+001F).
PYTHON_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())

# A line of printable ASCII without "&" (and tab, LF, FF) is a fixed point of every fix of ftfy.fix_text, so cleaners
# skip those fixes on it. (Not CR, which fix_line_breaks changes, nor "&", which may start an entity.)
PLAIN_LINE = r"[\t\n\x0c\x20-\x25\x27-\x7e]*"

# ftfy.fixes.fix_latin_ligatures: Latin typographic ligatures and legacy digraphs, split into letters. NFKC would
# do most of this but differs on U+FB05 (ftfy keeps the long s) and would also touch ligatures ftfy keeps (æ).
LATIN_LIGATURES = {
    "Ĳ": "IJ", "ĳ": "ij", "ŉ": "ʼn", "Ǳ": "DZ", "ǲ": "Dz", "ǳ": "dz", "Ǆ": "DŽ", "ǅ": "Dž", "ǆ": "dž",
    "Ǉ": "LJ", "ǈ": "Lj", "ǉ": "lj", "Ǌ": "NJ", "ǋ": "Nj", "ǌ": "nj",
    "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "ſt", "ﬆ": "st",
}


def c1_to_windows_1252():
    """ftfy's fix_c1_controls: C1 controls U+0080..U+009F read as Windows-1252 bytes; the five bytes Windows-1252
    leaves undefined stay as they are ("sloppy" decoding)."""
    mapping = {}
    for byte in range(0x80, 0xA0):
        try:
            mapping[chr(byte)] = bytes([byte]).decode("cp1252")
        except UnicodeDecodeError:
            pass
    return mapping


def _width_map():
    """ftfy's fix_character_width: the ideographic space and the Halfwidth and Fullwidth Forms block to NFKC."""
    mapping = {"\u3000": " "}
    for code in range(0xFF01, 0xFFF0):
        normal = unicodedata.normalize("NFKC", chr(code))
        if normal != chr(code):
            mapping[chr(code)] = normal
    return mapping


def _compose(*maps):
    """One character map equal to applying `maps` one after another as str.translate tables, in code point order
    (so that text_cleaning.json, which the manifest hashes, is the same from one export to the next)."""
    domain = sorted(set().union(*maps))
    composed = {}
    for char in domain:
        text = char
        for mapping in maps:
            text = "".join(mapping.get(c, c) for c in text)
        if text != char:
            composed[char] = text
    return composed


def ftfy_character_fixes():
    """ftfy's per-character fixes that run before line-break and escape-sequence handling, composed in ftfy's
    order: fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes."""
    quotes = {"\u02bc": "'", "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
              "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"'}
    return _compose(c1_to_windows_1252(), LATIN_LIGATURES, _width_map(), quotes)


def ftfy_late_character_fixes():
    """fix_line_breaks' single-character part (U+2028, U+2029; U+0085 has become "…" as a C1 control already)
    and remove_control_chars, which ftfy applies after CR/LF handling and terminal-escape removal."""
    controls = [*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, *range(0x206A, 0x2070), 0xFEFF,
                *range(0xFFF9, 0xFFFD)]
    mapping = {chr(c): "" for c in controls}
    mapping.update({"\u2028": "\n", "\u2029": "\n"})
    return mapping


def ftfy_html_entities():
    """ftfy's unescape_html table: every HTML5 named entity written with its semicolon, plus the all-caps
    spelling of lowercase names (decoded to the uppercased character) when that spelling is not itself a name."""
    entities = {}
    for name, char in html.entities.html5.items():
        if name.endswith(";"):
            entities["&" + name] = char
            upper = "&" + name.upper()
            if name == name.lower() and html.unescape(upper) == upper:
                entities[upper] = char.upper()
    return entities


@functools.lru_cache(maxsize=None)
def lowercase_gaps():
    """{letter: str.lower(letter)} for the letters tf.strings.lower leaves as they are although str.lower does
    not: its case tables are older than this Python's (40 letters added in Unicode 14 for Python 3.11)."""
    # The letters str.lower changes, looked for 256 code points at a time: str.lower turns each character into one
    # or more, so a block it leaves as it is holds none of them, and only the few blocks of cased scripts are
    # looked at letter by letter.
    chars = _all_chars()
    blocks = (chars[i:i + 256] for i in range(0, len(chars), 256))
    cased = [c for block in blocks if block.lower() != block for c in block if c.lower() != c]
    lowered = tf.strings.lower(tf.constant([c.encode("utf-8") for c in cased]), encoding="utf-8").numpy()
    return {c: c.lower() for c, tf_lower in zip(cased, lowered) if tf_lower.decode("utf-8") != c.lower()}


# --- ftfy's mojibake repair (ftfy.fix_encoding), as data ---------------------------------------------------------
# ftfy re-decodes a line only when a heuristic of character sequences says it looks like mojibake. The classes and
# sequences below are that heuristic (ftfy 6.3's badness.py), written as RE2; tests check them against ftfy on
# every pair of the characters involved and on random mixtures.

# The single-byte encodings ftfy tries, in its order. "sloppy-" ones are ftfy's codecs: the Windows code page
# with its undefined bytes read as Latin-1, and byte 0x1A standing for U+FFFD.
MOJIBAKE_ENCODINGS = ("latin-1", "sloppy-windows-1252", "sloppy-windows-1251", "sloppy-windows-1250",
                      "sloppy-windows-1253", "sloppy-windows-1254", "sloppy-windows-1257", "iso-8859-2",
                      "macroman", "cp437")


def is_sloppy(encoding):
    """Whether `encoding` (of MOJIBAKE_ENCODINGS) is one of ftfy's sloppy codecs, the ones after which ftfy decodes
    UTF-8 sequences with lost bytes as U+FFFD (replace_lossy_sequences)."""
    return encoding.startswith("sloppy-")


def restores_byte_a0(encoding):
    """Whether ftfy puts back bytes A0 that became spaces (restore_byte_a0) in what `encoding` (of
    MOJIBAKE_ENCODINGS) encodes a line to: not with MacRoman, where the pattern would match an en dash followed by a
    space (ftfy's reason)."""
    return encoding != "macroman"


def single_byte_chars(encoding):
    """The 256 characters bytes 0..255 decode to in one of MOJIBAKE_ENCODINGS."""
    sloppy = is_sloppy(encoding)
    codec = encoding.removeprefix("sloppy-")
    chars = []
    for byte in range(256):
        try:
            chars.append(bytes([byte]).decode(codec))
        except UnicodeDecodeError:
            chars.append(chr(byte))
    if sloppy:
        chars[0x1A] = "\ufffd"
    return chars


# Character classes of the heuristic, "a-b" being a range.
MOJIBAKE_CLASSES = {
    "common": "\xa0\xad·´–—―…’",
    "c1": "\x80-\x9f",
    "bad": "¦¤¨¬¯¸ƒˆˇ˘˛˜†‡‰⌐◊\ufffdªº",
    "law": "¶§",
    "currency": "¢£¥₧€",
    "start_punctuation": "¡«¿©΄΅‘‚“„•‹\uf8ff",
    "end_punctuation": "®»˝”›™",
    "numeric": "²³¹±¼½¾×µ÷⁄∂∆∏∑√∞∩∫≈≠≡≤≥№",
    "kaomoji": "Ò-ÖÙ-Üò-öø-üŐŌŪŲ°",
    "upper_accented": "À-ÑØÜÝĂĀĄĆČĎĐĘĚĒĖĞĢİĪĶĹĽŁĻŃŇŅŒŘŚŞŠŢŤŮŰŸŹŻŽҐ",
    "lower_accented": "ßà-ñăąāćčďđęěēėğģįīķĺľłļœŕśşšťüźżžґﬁﬂ",
    "upper_common": "ÞΑ-ΩΆΈΉΊΌΎΏΪΫЁ-Я",
    "lower_common": "α-ωάέήίΰа-џ",
    "box": "│┌┐┘├┤┬┼═-╬▀▄█▌▐░▒▓",
}

# Sequences that make a line "bad" (any one found anywhere). {name} is a class above; {space} and {word} are
# Python's \s and \w, which in RE2 are ASCII-only and so are spelt out.
MOJIBAKE_SEQUENCES = (
    "[{c1}]",
    "[{bad}{lower_accented}{upper_accented}{box}{start_punctuation}{end_punctuation}{currency}{numeric}{law}][{bad}]",
    "[a-zA-Z][{lower_common}{upper_common}][{bad}]",
    "[{bad}][{lower_accented}{upper_accented}{box}{start_punctuation}{end_punctuation}{currency}{numeric}{law}]",
    "[{lower_accented}{lower_common}{box}{end_punctuation}{currency}{numeric}][{upper_accented}]",
    "[{box}{end_punctuation}{currency}{numeric}][{lower_accented}]",
    "[{lower_accented}{box}{end_punctuation}][{currency}]",
    "{space}[{upper_accented}][{currency}]",
    "[{upper_accented}{box}][{numeric}{law}]",
    "[{lower_accented}{upper_accented}{box}{currency}{end_punctuation}][{start_punctuation}][{numeric}]",
    "[{lower_accented}{upper_accented}{currency}{numeric}{box}{law}][{end_punctuation}][{start_punctuation}]",
    "[{currency}{numeric}{box}][{start_punctuation}]",
    "[a-z][{upper_accented}][{start_punctuation}{currency}]",
    "[{box}][{kaomoji}]",
    "[{lower_accented}{upper_accented}{currency}{numeric}{start_punctuation}{end_punctuation}{law}][{box}]",
    "[{box}][{end_punctuation}]",
    "[{lower_accented}{upper_accented}][{start_punctuation}{end_punctuation}]{word}",
    "[Œœ][^A-Za-z]",
    "[{upper_accented}]°",
    "[ÂÃÎÐ][€œŠš¢£Ÿž\xa0\xad®©°·»{start_punctuation}{end_punctuation}–—´]",
    "×[²³]",
    "[ØÙ][{common}{currency}{bad}{numeric}{start_punctuation}ŸŠ®°µ»]"
    "[ØÙ][{common}{currency}{bad}{numeric}{start_punctuation}ŸŠ®°µ»]",
    "à[²µ¹¼½¾]",
    "√[±∂†≠®™´≤≥¥µø]",
    "≈[°¢]",
    "‚Ä[ìîïòôúùû†°¢π]",
    "‚[âó][àä°ê]",
    "вЂ",
    "[ВГРС][{c1}{bad}{start_punctuation}{end_punctuation}{currency}°µ][ВГРС]",
    "ГўВЂВ.[A-Za-z ]",
    "Ã[\xa0¡]",
    "[a-z]{space}?[ÃÂ] ",
    "^[ÃÂ] ",
    "[a-z.,?!{end_punctuation}]Â[ {start_punctuation}{end_punctuation}]",
    "β€[™\xa0Ά\xad®°]",
    "[ΒΓΞΟ][{c1}{bad}{start_punctuation}{end_punctuation}{currency}°][ΒΓΞΟ]",
    "ā€",
)


def class_chars(spec, named=None):
    """The set of characters of a class written as above ("a-b" is a range; "{name}" is named[name])."""
    chars, i = set(), 0
    while i < len(spec):
        if named is not None and spec[i] == "{":
            end = spec.index("}", i)
            chars |= named[spec[i + 1:end]]
            i = end + 1
        elif i + 2 < len(spec) and spec[i + 1] == "-":
            chars.update(chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            chars.add(spec[i])
            i += 1
    return chars


def _runs(codes):
    """(first, last) of each run of consecutive code points in `codes`, ascending, duplicates dropped."""
    codes, runs = sorted(set(codes)), []
    for code in codes:
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return [tuple(run) for run in runs]


def _re2_ranges(chars):
    """The inside of an RE2 class holding exactly `chars`, as escaped ranges."""
    return "".join(f"\\x{{{a:x}}}" + (f"-\\x{{{b:x}}}" if b > a else "") for a, b in _runs(map(ord, chars)))


@functools.lru_cache(maxsize=None)
def python_word_chars():
    """What Python's re (str patterns) matches with \\w."""
    # Asked of re itself, on every code point at once: str.isalnum() or "_" (the surrogates, which _all_chars()
    # leaves out, are neither).
    return frozenset(re.sub(r"\W", "", _all_chars()))


def mojibake_pattern():
    """The heuristic as one RE2 alternation (search it; "^" means the start of the line)."""
    classes = {name: _re2_ranges(class_chars(spec)) for name, spec in MOJIBAKE_CLASSES.items()}
    classes["space"] = "[" + _re2_ranges(PYTHON_WHITESPACE) + "]"
    classes["word"] = "[" + _re2_ranges(python_word_chars()) + "]"
    return "|".join(sequence.format(**classes) for sequence in MOJIBAKE_SEQUENCES)


def mojibake_sequence_steps():
    """The heuristic's sequences as data instead of a pattern: [{"anchored": bool, "steps": [{"chars": set,
    "negate": bool, "optional": bool}, ...]}, ...], a line being bad where any sequence matches at some position
    (anchored ones only at the start). For matchers without RE2 whose large classes are slow (java.util.regex)."""
    named = {name: class_chars(spec) for name, spec in MOJIBAKE_CLASSES.items()}
    named["space"] = set(PYTHON_WHITESPACE)
    named["word"] = set(python_word_chars())

    sequences = []
    for sequence in MOJIBAKE_SEQUENCES:
        steps, i, anchored = [], 0, sequence.startswith("^")
        i = 1 if anchored else 0
        while i < len(sequence):
            if sequence[i] == "[":
                end = sequence.index("]", i + 1)
                negate = sequence[i + 1] == "^"
                steps.append({"chars": class_chars(sequence[i + 1 + negate:end], named), "negate": negate})
                i = end + 1
            elif sequence[i] == "{":
                end = sequence.index("}", i)
                steps.append({"chars": named[sequence[i + 1:end]], "negate": False})
                i = end + 1
            elif sequence[i] == ".":
                steps.append({"chars": set(), "negate": True})
                i += 1
            elif sequence[i] == "?":
                steps[-1]["optional"] = True
                i += 1
            else:
                steps.append({"chars": {sequence[i]}, "negate": False})
                i += 1
        for step in steps:
            step.setdefault("optional", False)
        sequences.append({"anchored": anchored, "steps": steps})
    return sequences


def utf8_clue_classes():
    """ftfy's decode_inconsistent_utf8 looks for runs of characters that a Latin-1-like code page gives for the
    bytes of UTF-8 sequences: lead bytes of 2-, 3- and 4-byte sequences and continuation bytes (also a space,
    which may have been U+00A0). A run is not taken if the character before it is a "strict" continuation (one
    not ordinarily next to mojibake: the continuations without spaces, dashes, quotes, bullet and ellipsis)."""
    code_pages = ("latin-1", "windows-1252", "windows-1250", "windows-1251", "windows-1253", "windows-1254",
                  "windows-1257")

    def decoded(byte_values):
        chars = set()
        for code_page in code_pages:
            for byte in byte_values:
                try:
                    chars.add(bytes([byte]).decode(code_page))
                except UnicodeDecodeError:
                    pass
        return chars

    continuation = decoded(range(0x80, 0xC0)) | {chr(c) for c in range(0x80, 0xC0)} | {" "}
    return {
        "first_of_2": decoded(range(0xC2, 0xE0)),
        "first_of_3": decoded(range(0xE0, 0xF0)),
        "first_of_4": decoded((0xF0, 0xF3)),
        "continuation": continuation,
        "continuation_strict": continuation - set(" –—―‘’‚“”„•…"),
    }


def embedded_utf8_pattern():
    """decode_inconsistent_utf8's run of UTF-8-like characters, as RE2, with the character before it ("not after
    a strict continuation", a look-behind in ftfy's pattern, which RE2 lacks); lines get a leading "\x01" so that
    a run at the start has one too."""
    clues = {name: _re2_ranges(chars) for name, chars in utf8_clue_classes().items()}
    utf8_run = ("(?:[{first_of_2}][{continuation}]|[{first_of_3}][{continuation}]{{2}}"
                "|[{first_of_4}][{continuation}]{{3}})").format(**clues)
    return "[^" + clues["continuation_strict"] + "]" + utf8_run + "+"


# How deep decode_inconsistent_utf8's repair of runs within runs is reproduced (each level is more graph).
MAX_RUN_DEPTH = 2


# Byte patterns of the re-decoding, over text whose characters stand for bytes (U+0000..U+00FF).
# ftfy's "Ã " rule, restore_byte_a0's first step: "Ã " gets its A0 back before the space unless a space or one of a
# few Portuguese words follows. What may follow is written once, here: A_GRAVE_WORD is ftfy's pattern, with its
# look-ahead (text_cleaning.json's, for java.util.regex); RE2 has no look-ahead, so the graph matches
# A_GRAVE_WORD_EXCEPTIONS instead, the "Ã " the rule leaves alone with what follows them captured.
_A_GRAVE_KEPT_BEFORE = " |quele|quela|quilo|s "
A_GRAVE_WORD = r"\x{c3} (?!" + _A_GRAVE_KEPT_BEFORE + ")"
A_GRAVE_WORD_EXCEPTIONS = r"\x{c3} (" + _A_GRAVE_KEPT_BEFORE + ")"
# Then UTF-8 sequences whose byte A0 may have become a space, which ftfy puts back (restore_byte_a0).
SPACED_UTF8 = (r"[\x{c2}\x{c3}\x{c5}\x{ce}\x{d0}\x{d9}] |[\x{e2}\x{e3}] [\x{80}-\x{84}\x{86}-\x{9f}\x{a1}-\x{bf}]"
               r"|[\x{e0}-\x{e3}][\x{80}-\x{84}\x{86}-\x{9f}\x{a1}-\x{bf}] |\x{f0} [\x{80}-\x{bf}]{2}"
               r"|\x{f0}[\x{80}-\x{bf}] [\x{80}-\x{bf}]|\x{f0}[\x{80}-\x{bf}]{2} ")
# UTF-8 sequences with bytes lost to U+FFFD (byte 0x1A in the sloppy code pages) or "?": ftfy decodes each as
# U+FFFD (replace_lossy_sequences). Alternatives in ftfy's order (RE2 takes the first that matches, as re).
LOSSY_UTF8 = (r"[\x{c2}-\x{df}]\x{1a}|[\x{c2}\x{c3}]\?"
              r"|\x{ed}[\x{a0}-\x{af}][\x{1a}?]\x{ed}[\x{b0}-\x{bf}][\x{1a}?\x{80}-\x{bf}]"
              r"|\x{ed}[\x{a0}-\x{af}][\x{1a}?\x{80}-\x{bf}]\x{ed}[\x{b0}-\x{bf}][\x{1a}?]"
              r"|[\x{e0}-\x{ef}][\x{1a}?][\x{1a}\x{80}-\x{bf}]|[\x{e0}-\x{ef}][\x{1a}\x{80}-\x{bf}][\x{1a}?]"
              r"|[\x{f0}-\x{f4}][\x{1a}?][\x{1a}\x{80}-\x{bf}][\x{1a}\x{80}-\x{bf}]"
              r"|[\x{f0}-\x{f4}][\x{1a}\x{80}-\x{bf}][\x{1a}?][\x{1a}\x{80}-\x{bf}]"
              r"|[\x{f0}-\x{f4}][\x{1a}\x{80}-\x{bf}][\x{1a}\x{80}-\x{bf}][\x{1a}?]|\x{1a}")
# CESU-8 surrogates and Java's two-byte NUL, which ftfy decodes with its "utf-8-variants" codec; we do not.
UTF8_VARIANTS = r"\x{c0}(?:\x{80}|$)|\x{ed}(?:[\x{a0}-\x{bf}]|$)"


# Python's html.unescape pattern (CPython's html module; the same since Python 3.4) and ftfy's.
HTML_CHARREF = r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)"
FTFY_ENTITY = r"&#?[0-9A-Za-z]{1,24};"
ANSI_ESCAPE = r"\x1b\[[\p{Nd};]*[a-zA-Z]"


# What html.unescape makes of a numeric character reference "&#number;", after the HTML5 specification's rules
# (CPython keeps these tables private, so they are written here from the rules; tests compare them with
# html.unescape for every number): the numbers below have replacements, surrogates and numbers beyond U+10FFFF
# give U+FFFD, the dropped code points give nothing, and any other number is its character.
def html_charref_replacements():
    """{number: replacement}: NUL gives U+FFFD, CR stays CR, and 0x80..0x9F are read as Windows-1252 (its five
    undefined bytes as their own C1 control, as ftfy's fix_c1_controls reads them)."""
    c1 = c1_to_windows_1252()
    return {0x00: "\ufffd", 0x0D: "\r", **{number: c1.get(chr(number), chr(number)) for number in range(0x80, 0xA0)}}


def html_dropped_code_points():
    """The code points dropped, ascending: control characters other than ASCII whitespace (C0 except tab, LF, FF
    and CR; DEL; C1) and Unicode's noncharacters (U+FDD0..U+FDEF and the last two code points of every plane)."""
    controls = [*range(0x01, 0x09), 0x0B, *range(0x0E, 0x20), *range(0x7F, 0xA0)]
    noncharacters = [*range(0xFDD0, 0xFDF0), *(plane << 16 | low for plane in range(17) for low in (0xFFFE, 0xFFFF))]
    return sorted(controls + noncharacters)


# --- The cleaning tables as data, for cleaners outside TensorFlow --------------------------------------------------
# cleaning_tables() writes every table and pattern the graph uses into one JSON document (CLIPTokenizer adds its
# pre-tokenisation tables to it), so that an on-device cleaner (android_demo's Java TextCleaner) follows the graph's
# Unicode data rather than its own platform's. Where the graph uses TensorFlow's or RE2's Unicode tables (digits,
# lowercasing, NFC), they are read off the graph's own ops, every code point at once. docs/tokenizer.md describes
# the format.

TEXT_CLEANING_FORMAT = 1


# The tables below are read off what the graph's ops (and unicodedata) do to every one of 1.1 million code points,
# most of which they leave as they are. So the ops run on one tensor of every code point (built once per process),
# their outputs are compared with it in TensorFlow and NumPy, and Python decodes and loops over only the few
# thousand code points whose output differs.

@functools.lru_cache(maxsize=None)
def _all_code_points():
    """Every code point but the surrogates (which UTF-8 cannot encode), ascending, as a read-only int32 array."""
    codes = np.arange(0x110000, dtype=np.int32)
    codes = codes[(codes < 0xD800) | (codes > 0xDFFF)]
    codes.flags.writeable = False
    return codes


@functools.lru_cache(maxsize=None)
def _all_code_point_strings():
    """_all_code_points() as a tf.string tensor, each code point UTF-8-encoded on its own."""
    codes = _all_code_points()
    # A ragged tensor of one code point per row: from a [N, 1] tensor, unicode_encode would build its row
    # partition in Python.
    rows = tf.RaggedTensor.from_row_splits(codes, np.arange(codes.size + 1), validate=False)
    return tf.strings.unicode_encode(rows, "UTF-8")


@functools.lru_cache(maxsize=None)
def _all_chars():
    """_all_code_points() as one str, character i being code point _all_code_points()[i]."""
    return _all_code_points().astype("<u4").tobytes().decode("utf-32-le")


def hex_ranges(codes):
    """Sorted code points as "a-b,c,..." (hex, ranges of consecutive ones): compact in JSON."""
    return ",".join(f"{a:x}" + (f"-{b:x}" if b > a else "") for a, b in _runs(codes))


def _hex_range_values(values):
    """{code point: int} as "a-b:v,c:w,..." with ranges of consecutive code points of one value."""
    codes, out, i = sorted(values), [], 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1 and values[codes[j + 1]] == values[codes[i]]:
            j += 1
        out.append(f"{codes[i]:x}" + (f"-{codes[j]:x}" if j > i else "") + f":{values[codes[i]]}")
        i = j + 1
    return ",".join(out)


def graph_class_members(*patterns):
    """For each RE2 pattern (a class such as \\p{L}): the code points the graph's regex ops match with it."""
    codes, chars = _all_code_points(), _all_code_point_strings()
    return [codes[tf.strings.regex_full_match(chars, pattern).numpy()].tolist() for pattern in patterns]


def _graph_unicode_tables():
    """What the graph's ops do to every code point: tf.strings.lower followed by the lowercase_gaps map; the
    Final_Sigma context classes of tf.strings.lower; tensorflow-text's NFD and NFC."""
    codes, chars = _all_code_points(), _all_code_point_strings()

    def changed(outputs):
        """{code point: its output decoded} for the code points whose output (of `outputs`, one per code point)
        is not the code point itself."""
        differs = tf.not_equal(outputs, chars)
        decoded = (t.decode("utf-8") for t in tf.boolean_mask(outputs, differs).numpy())
        return dict(zip(codes[differs.numpy()].tolist(), decoded))

    gaps = lowercase_gaps()
    tf_lowered = changed(tf.strings.lower(chars, encoding="utf-8"))
    # A code point tf.strings.lower leaves as it is is lowercased only if lowercase_gaps has it.
    lowercase = {}
    for c in sorted(tf_lowered.keys() | {ord(g) for g in gaps}):
        low = "".join(gaps.get(x, x) for x in tf_lowered.get(c, chr(c)))
        if low != chr(c):
            lowercase[chr(c)] = low

    # Final sigma (capital sigma -> "ς" at the end of a word): X + Σ ends in "ς" when X is cased; Α + X + Σ
    # also when X is case-ignorable (skipped when looking for the cased letter before).
    # RE2 tests "ends in ς" on the UTF-8 bytes, so that no text is decoded in Python.
    def final_sigma(prefix):
        texts = tf.strings.lower(tf.strings.join([prefix, chars, "\u03a3"]), encoding="utf-8")
        return tf.strings.regex_full_match(texts, "(?s).*\u03c2").numpy()

    cased = final_sigma("")
    case_ignorable = final_sigma("\u0391") & ~cased
    decompositions = {chr(c): d for c, d in changed(tf_text.normalize_utf8(chars, "NFD")).items()
                      if not 0xAC00 <= c <= 0xD7A3}
    nfc_changed = changed(tf_text.normalize_utf8(chars, "NFC")).keys()
    # Primary composites: a canonical pair (Python's table) that the graph's NFC composes, to a stable character.
    pairs = {}
    for c in decompositions:
        parts = unicodedata.decomposition(c).split()
        if ord(c) not in nfc_changed and len(parts) == 2 and not parts[0].startswith("<"):
            pairs["".join(chr(int(p, 16)) for p in parts)] = c
    composed = [t.decode("utf-8") for t in tf_text.normalize_utf8(tf.constant([p.encode("utf-8") for p in pairs]),
                                                                    "NFC").numpy()]
    compositions = {p: c for (p, c), n in zip(pairs.items(), composed) if n == c}
    return {
        "lowercase": lowercase,
        "cased": hex_ranges(codes[cased].tolist()),
        "case_ignorable": hex_ranges(codes[case_ignorable].tolist()),
        "decompositions": decompositions,
        "compositions": compositions,
    }


def cleaning_tables():
    """Every table and pattern of the graph's cleaning as one JSON-able dict (the export's
    assets/text_cleaning.json without CLIPTokenizer's "pre_tokenization"). Patterns are RE2 as the graph uses
    them, except that "$" (end of text in RE2) is written "\\z", which means the same to RE2 and to
    java.util.regex. The first call takes a second or two of CPU (the Unicode tables are read off the graph's ops); the
    tables cannot change within a process, so later calls get a fresh copy of the first's."""
    return json.loads(_cleaning_tables_json())


@functools.lru_cache(maxsize=1)
def _cleaning_tables_json():
    unicode_tables = _graph_unicode_tables()
    decimal_digits, = graph_class_members(r"\p{Nd}")
    # Python's canonical combining classes, of which few are not 0.
    codes = _all_code_points()
    combining = np.fromiter(map(unicodedata.combining, _all_chars()), np.int32, count=len(codes))
    combining_codes = np.flatnonzero(combining)
    ftfy_entities = ftfy_html_entities()
    html5 = html.entities.html5
    # ftfy's table is html5's names with ";" plus all-caps spellings: only the latter are written.
    extra_entities = {k: v for k, v in ftfy_entities.items() if html5.get(k[1:]) != v}
    return json.dumps({
        "format": TEXT_CLEANING_FORMAT,
        "whitespace": hex_ranges(ord(c) for c in PYTHON_WHITESPACE),
        "ftfy": {
            "plain_line": PLAIN_LINE,
            "entity": FTFY_ENTITY,
            "extra_entities": extra_entities,
            "character_fixes": ftfy_character_fixes(),
            "late_character_fixes": ftfy_late_character_fixes(),
            "ansi_escape": ANSI_ESCAPE.replace(r"\p{Nd}", _re2_ranges(map(chr, decimal_digits))),
        },
        "html": {
            "charref": HTML_CHARREF,
            "entities": html5,
            "invalid_charrefs": {str(k): v for k, v in sorted(html_charref_replacements().items())},
            "invalid_codepoints": hex_ranges(html_dropped_code_points()),
        },
        "mojibake": {
            "max_run_depth": MAX_RUN_DEPTH,
            "sequences": [{"anchored": seq["anchored"],
                           "steps": [{"chars": hex_ranges(ord(c) for c in step["chars"]), "negate": step["negate"],
                                      "optional": step["optional"]} for step in seq["steps"]]}
                          for seq in mojibake_sequence_steps()],
            "encodings": [{"name": e, "chars": "".join(single_byte_chars(e)), "restore_byte_a0": restores_byte_a0(e),
                           "sloppy": is_sloppy(e)} for e in MOJIBAKE_ENCODINGS],
            "c1_fixes": c1_to_windows_1252(),
            "a_grave_word": A_GRAVE_WORD,
            "spaced_utf8": SPACED_UTF8,
            "lossy_utf8": LOSSY_UTF8,
            "utf8_variants": UTF8_VARIANTS.replace("$", r"\z"),
            "utf8_clues": {name: hex_ranges(ord(c) for c in chars) for name, chars in utf8_clue_classes().items()},
        },
        "lowercase": {
            "map": unicode_tables["lowercase"],
            "cased": unicode_tables["cased"],
            "case_ignorable": unicode_tables["case_ignorable"],
        },
        "nfc": {
            "decompositions": unicode_tables["decompositions"],
            "combining_classes": _hex_range_values(dict(zip(codes[combining_codes].tolist(),
                                                            combining[combining_codes].tolist()))),
            "compositions": unicode_tables["compositions"],
        },
    })

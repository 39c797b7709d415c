"""CLIP's byte-level BPE tokenizer, built from TensorFlow and tensorflow-text ops only.

Everything between a string tensor and the token ids is graph ops (no tf.py_function, no numpy), so the tokenizer
is saved inside a SavedModel and needs only tensorflow + tensorflow_text to run. The reference is OpenAI's
tokenizer as shipped in open_clip (SimpleTokenizer, clean="lower", ftfy installed), whose steps are, in order:

    ftfy.fix_text -> html.unescape twice -> strip -> collapse whitespace -> str.lower
    -> pre-tokenisation regex -> UTF-8 bytes to symbols -> BPE by merge rank -> [start] + ids + [end],
    truncated to context_length keeping the end token last, padded with 0

Of ftfy.fix_text we reproduce what it does to text that is not mojibake; its mojibake detection and repair
(ftfy.fix_encoding) is not reproduced. docs/tokenizer.md lists every known difference and its cause.
"""

import dataclasses
import functools
import gzip
import hashlib
import html
import html.entities
import json
import os
import unicodedata

import tensorflow as tf
import tensorflow_text as tf_text

ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
OPENAI_VOCABULARY_PATH = os.path.join(ASSETS_DIR, "bpe_simple_vocab_16e6.txt.gz")
# sha256 of bpe_simple_vocab_16e6.txt.gz as shipped in openai/CLIP and in the open_clip_torch wheels.
OPENAI_VOCABULARY_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
# OpenAI's file holds 262,144 merges; CLIP uses the first 48,894 (vocabulary 49,408 = 256 bytes + 256 bytes
# with "</w>" + 48,894 merges + 2 special tokens).
OPENAI_MERGE_COUNT = 49152 - 256 - 2

END_OF_WORD = "</w>"
# Special-token spellings: open_clip's (which the reference recognises inside text) and OpenAI's/Hugging Face's.
START_TOKEN_NAMES = ("<start_of_text>", "<|startoftext|>")
END_TOKEN_NAMES = ("<end_of_text>", "<|endoftext|>")
HF_START_TOKEN, HF_END_TOKEN = "<|startoftext|>", "<|endoftext|>"

# Never a replacement value of the character maps below, so a lookup returning it means "not in the map".
_UNMAPPED = "\x00unmapped\x00"
_NO_MERGE = 2**31 - 1


def byte_to_unicode():
    """GPT-2's reversible map from a byte to the character that stands for it in BPE symbols.

    Printable Latin-1 bytes stand for themselves; the other 68 (controls, space, no-break space, soft hyphen)
    move to U+0100 upwards in byte order, so no symbol contains whitespace. Insertion order is OpenAI's
    vocabulary order (ids 0..255).
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {byte: chr(byte) for byte in printable}
    for shift, byte in enumerate(b for b in range(256) if b not in mapping):
        mapping[byte] = chr(256 + shift)
    return mapping


def _re2_chars(chars):
    return "".join(f"\\x{{{ord(c):x}}}" for c in sorted(chars))


def _re2_alternatives(words):
    # Longest first: RE2 alternation is leftmost-first, so this picks the longest alternative that matches.
    escaped = (_re2_escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))
    return "(?:" + "|".join(escaped) + ")"


def _re2_escape(text):
    return "".join(c if c.isalnum() and c.isascii() else f"\\x{{{ord(c):x}}}" for c in text)


# --- What ftfy.fix_text does to ordinary text, as data built from the standard library -------------------------

# str.isspace: what the reference's str.strip() and " ".join(text.split()) treat as whitespace. It is a superset
# of the `regex` module's \s used by the pre-tokenisation pattern (it adds U+001C..U+001F).
PYTHON_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())

# ftfy.fixes.fix_latin_ligatures: Latin typographic ligatures and legacy digraphs, split into letters. NFKC would
# do most of this but differs on U+FB05 (ftfy keeps the long s) and would also touch ligatures ftfy keeps (æ).
LATIN_LIGATURES = {
    "Ĳ": "IJ", "ĳ": "ij", "ŉ": "ʼn", "Ǳ": "DZ", "ǲ": "Dz", "ǳ": "dz", "Ǆ": "DŽ", "ǅ": "Dž", "ǆ": "dž",
    "Ǉ": "LJ", "ǈ": "Lj", "ǉ": "lj", "Ǌ": "NJ", "ǋ": "Nj", "ǌ": "nj",
    "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "ſt", "ﬆ": "st",
}


def _c1_to_windows_1252():
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
    """One character map equal to applying `maps` one after another as str.translate tables."""
    domain = set().union(*maps)
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
    return _compose(_c1_to_windows_1252(), LATIN_LIGATURES, _width_map(), quotes)


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
    cased = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and chr(c).lower() != chr(c)]
    lowered = tf.strings.lower(tf.constant([c.encode("utf-8") for c in cased]), encoding="utf-8").numpy()
    return {c: c.lower() for c, tf_lower in zip(cased, lowered) if tf_lower.decode("utf-8") != c.lower()}


# Python's html.unescape patterns and tables (CPython's html module; identical since Python 3.4).
_HTML_CHARREF = r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)"
_FTFY_ENTITY = r"&#?[0-9A-Za-z]{1,24};"
_ANSI_ESCAPE = r"\x1b\[[\p{Nd};]*[a-zA-Z]"


@dataclasses.dataclass(frozen=True)
class _VocabularyData:
    """Plain Python copies kept for vocabulary_files(); a plain object so tf.Module does not try to track it."""

    tokens: dict
    merges: tuple


def _read_text_file(path, what):
    try:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rb") as f:
            return f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise ValueError(f"cannot read {what} file {path!r}: {e}") from e


def _load_vocabulary(vocabulary):
    if isinstance(vocabulary, (str, os.PathLike)):
        try:
            vocabulary_dict = json.loads(_read_text_file(vocabulary, "vocabulary"))
        except json.JSONDecodeError as e:
            raise ValueError(f"vocabulary file {vocabulary!r} is not JSON: {e}") from e
        source = repr(os.fspath(vocabulary))
    else:
        vocabulary_dict, source = vocabulary, "vocabulary"
    if not isinstance(vocabulary_dict, dict) or not vocabulary_dict:
        raise ValueError(f"{source} must be a non-empty mapping token -> id, got {type(vocabulary_dict).__name__}")
    seen = {}
    for token, token_id in vocabulary_dict.items():
        if not isinstance(token, str) or not isinstance(token_id, int) or token_id < 0:
            raise ValueError(f"{source}: entry {token!r}: {token_id!r} is not a str token with an id >= 0")
        if token_id in seen:
            raise ValueError(f"{source}: tokens {seen[token_id]!r} and {token!r} share id {token_id}")
        seen[token_id] = token
    return dict(vocabulary_dict)


def _load_merges(merges, vocabulary):
    """Merges in rank order. A file's first line is a header when it contains "#version" (Hugging Face's
    merges.txt and OpenAI's bpe file both have one). Merges whose result is not in the vocabulary are an error,
    except a trailing run of them: OpenAI's file lists 262,144 merges of which CLIP's vocabulary uses the first
    48,894."""
    if isinstance(merges, (str, os.PathLike)):
        lines = _read_text_file(merges, "merges").split("\n")
        first_line = 1 if lines and "#version" in lines[0] else 0
        labelled = [(f"{os.fspath(merges)!r} line {number + 1}", line)
                    for number, line in enumerate(lines) if number >= first_line and line]
        source = repr(os.fspath(merges))
    else:
        labelled = [(f"merges[{index}]", line) for index, line in enumerate(merges)]
        source = "merges"
    pairs, first_unusable = {}, None
    for label, line in labelled:
        parts = line.split() if isinstance(line, str) else None
        if not parts or len(parts) != 2:
            raise ValueError(f"{label}: {line!r} is not two space-separated symbols")
        if tuple(parts) in pairs:
            raise ValueError(f"{label}: merge {line!r} repeats an earlier one")
        usable = all(s in vocabulary for s in (*parts, parts[0] + parts[1]))
        if usable and first_unusable is not None:
            raise ValueError(f"{first_unusable[0]}: merge {first_unusable[1]!r} uses symbols that are not in the "
                             "vocabulary")
        if usable:
            pairs[tuple(parts)] = len(pairs)
        elif first_unusable is None:
            first_unusable = (label, line)
    if not pairs:
        raise ValueError(f"{source} contains no merge usable with the vocabulary")
    return list(pairs)


def _validated_python_texts(texts):
    encoded = []
    for index, text in enumerate(texts):
        if isinstance(text, bytes):
            try:
                text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"texts[{index}] is not valid UTF-8: {e}") from None
            encoded.append(text)
        elif isinstance(text, str):
            try:
                encoded.append(text.encode("utf-8"))
            except UnicodeEncodeError:
                # Surrogate code points (a UTF-16 pair split by some JSON decoder, or half of one): as ftfy's
                # fix_surrogates in the reference, pairs become their character and the rest U+FFFD.
                joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
                encoded.append(joined.encode("utf-8"))
        else:
            raise ValueError(f"texts[{index}] is {type(text).__name__} {repr(text)[:60]}; expected a str")
    return encoded


def _string_table(mapping, default):
    keys = tf.constant(list(mapping.keys()), tf.string)
    values = tf.constant(list(mapping.values()), tf.string)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), default)


def _replace_where(texts, needs_work, transform):
    """transform(texts[needs_work]) scattered back into texts; cheap when few texts need the work."""
    indices = tf.where(needs_work)
    return tf.tensor_scatter_nd_update(texts, indices, transform(tf.gather_nd(texts, indices)))


def _replace_matches(texts, pattern, replace):
    """Each non-overlapping match of `pattern` (leftmost first, as re.sub) replaced by replace(matches)."""
    pieces = tf_text.regex_split(texts, pattern, keep_delim_regex_pattern=pattern)
    # A piece between two matches cannot itself match: the search would have found it there.
    is_match = tf.strings.regex_full_match(pieces.flat_values, pattern)
    flat = _replace_where(pieces.flat_values, is_match, replace)
    return tf.strings.reduce_join(pieces.with_flat_values(flat), axis=-1)


class CLIPTokenizer(tf.Module):
    """OpenAI CLIP's tokenizer as a tf.Module: tf.string [N] -> token_ids, padding_mask int32 [N, context_length].

    Args:
      vocabulary: dict token -> id, or path to a Hugging Face vocab.json.
      merges: list of "a b" strings in rank order, or path to a merges.txt (or OpenAI's .txt.gz).
      context_length: output length; longer texts are cut to it with the end token kept last.
    """

    START_TOKEN_ID = 49406
    END_TOKEN_ID = 49407

    def __init__(self, vocabulary, merges, context_length=77):
        super().__init__(name="clip_tokenizer")
        if not isinstance(context_length, int) or context_length < 2:
            raise ValueError(f"context_length must be an int >= 2 (room for start and end), got {context_length!r}")
        tokens = _load_vocabulary(vocabulary)
        merge_pairs = _load_merges(merges, tokens)
        self.context_length = context_length
        self._data = _VocabularyData(tokens=tokens, merges=tuple(merge_pairs))
        self.start_token_id = self._special_id(tokens, START_TOKEN_NAMES, "start")
        self.end_token_id = self._special_id(tokens, END_TOKEN_NAMES, "end")
        special_names = [t for t in (*START_TOKEN_NAMES, *END_TOKEN_NAMES) if t in tokens]

        byte_chars = byte_to_unicode()
        missing = [c for c in byte_chars.values() for s in (c, c + END_OF_WORD) if s not in tokens]
        if missing:
            raise ValueError(f"vocabulary lacks the byte symbols {missing[:5]} (and {max(0, len(missing) - 5)} more)")
        byte_keys = tf.constant([bytes([b]) for b in byte_chars])
        self._byte_ids = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            byte_keys, tf.constant([tokens[c] for c in byte_chars.values()], tf.int32)), -1)
        self._final_byte_ids = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            byte_keys, tf.constant([tokens[c + END_OF_WORD] for c in byte_chars.values()], tf.int32)), -1)

        # A merge pair (left id, right id) is keyed as left * id_space + right.
        self._id_space = max(tokens.values()) + 1
        pair_keys = [tokens[a] * self._id_space + tokens[b] for a, b in merge_pairs]
        self._merge_ranks = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(pair_keys, tf.int64), tf.range(len(merge_pairs), dtype=tf.int32)), _NO_MERGE)
        self._merge_results = tf.constant([tokens[a + b] for a, b in merge_pairs], tf.int32)

        # Decoding: each id's symbols as the bytes they stand for ("</w>" stays literal, as in OpenAI's decode).
        byte_of_char = {c: bytes([b]) for b, c in byte_chars.items()}
        token_bytes = [b""] * self._id_space
        for token, token_id in tokens.items():
            token_bytes[token_id] = b"".join(byte_of_char.get(c, c.encode("utf-8")) for c in token)
        self._token_bytes = tf.constant(token_bytes, tf.string)

        # Text cleaning tables.
        self._early_fixes = _string_table(ftfy_character_fixes(), _UNMAPPED)
        self._early_fix_chars = "[" + _re2_chars(ftfy_character_fixes()) + "]"
        self._late_fixes = _string_table(ftfy_late_character_fixes(), _UNMAPPED)
        self._late_fix_chars = "[" + _re2_chars(ftfy_late_character_fixes()) + "]"
        self._ftfy_entities = _string_table(ftfy_html_entities(), _UNMAPPED)
        self._html5_entities = _string_table({"&" + k: v for k, v in html.entities.html5.items()}, _UNMAPPED)
        legacy_names = [name for name in html.entities.html5 if not name.endswith(";")]
        self._legacy_entity_prefix = "(?s)^&(" + _re2_alternatives(legacy_names) + ")(.*)$"
        self._invalid_charrefs = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(html._invalid_charrefs), tf.int64),
            tf.constant(list(html._invalid_charrefs.values()), tf.string)), _UNMAPPED)
        self._invalid_codepoints = tf.constant(sorted(html._invalid_codepoints), tf.int64)
        self._whitespace_run = "[" + _re2_chars(PYTHON_WHITESPACE) + "]+"
        self._lowercase_gaps = _string_table(lowercase_gaps(), _UNMAPPED) if lowercase_gaps() else None
        self._lowercase_gap_chars = "[" + _re2_chars(lowercase_gaps()) + "]"
        # CLIP's pattern. The reference compiles all of it with re.IGNORECASE; that matters only for the special
        # tokens and contractions ("'ſ" is "'s"), so only they are case-insensitive here. One more effect of it:
        # U+0345 (combining ypogegrammeni, whose case partner is the letter ι) is matched by no alternative and
        # re.findall skips it; it is left out of the last class so that it goes unmatched here too. Its \s is
        # Unicode whitespace; after cleaning, U+0020 is the only whitespace left.
        specials = "|".join(_re2_escape(t) for t in special_names)
        self._word_pattern = ("(?i:" + specials + r"|'s|'t|'re|'ve|'m|'ll|'d)|\p{L}+|\p{N}|[^"
                              + _re2_chars(PYTHON_WHITESPACE) + r"\p{L}\p{N}\x{345}]+")

        # Cache: every word spelt by a "...</w>" token of the vocabulary, with its BPE computed once here. It
        # covers the frequent words, so the per-call BPE loop only sees rare words.
        cached_words = [token_bytes[i][: -len(END_OF_WORD)] for t, i in tokens.items()
                        if t.endswith(END_OF_WORD) and len(t) > len(END_OF_WORD) + 1]
        cached_tokens = tf.function(self._bpe, autograph=False)(tf.constant(cached_words, tf.string))
        special_rows = tf.ragged.constant([[tokens[t]] for t in special_names], tf.int32, ragged_rank=1)
        self._cached_tokens = tf.concat([cached_tokens, special_rows], axis=0)
        self._cache = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(cached_words + [t.encode("utf-8") for t in special_names], tf.string),
            tf.range(len(cached_words) + len(special_names), dtype=tf.int64)), -1)

    @staticmethod
    def _special_id(tokens, names, which):
        for name in names:
            if name in tokens:
                return tokens[name]
        raise ValueError(f"vocabulary has no {which} token (looked for {' or '.join(names)})")

    @classmethod
    def from_openai_vocabulary(cls, context_length=77):
        """The tokenizer of every OpenAI CLIP model, from the shipped bpe_simple_vocab_16e6.txt.gz."""
        with open(OPENAI_VOCABULARY_PATH, "rb") as f:
            compressed = f.read()
        digest = hashlib.sha256(compressed).hexdigest()
        if digest != OPENAI_VOCABULARY_SHA256:
            raise ValueError(f"{OPENAI_VOCABULARY_PATH} has sha256 {digest}, expected {OPENAI_VOCABULARY_SHA256}: "
                             "the file is damaged or not OpenAI's")
        lines = gzip.decompress(compressed).decode("utf-8").split("\n")
        merges = lines[1:1 + OPENAI_MERGE_COUNT]
        symbols = list(byte_to_unicode().values())
        symbols += [s + END_OF_WORD for s in symbols]
        symbols += ["".join(m.split()) for m in merges]
        symbols += [START_TOKEN_NAMES[0], END_TOKEN_NAMES[0]]
        return cls({s: i for i, s in enumerate(symbols)}, merges, context_length=context_length)

    def vocabulary_files(self):
        """(vocab.json text, merges.txt text) in Hugging Face's layout, with its special-token spellings."""
        renamed = {START_TOKEN_NAMES[0]: HF_START_TOKEN, END_TOKEN_NAMES[0]: HF_END_TOKEN}
        vocab = {renamed.get(t, t): i for t, i in sorted(self._data.tokens.items(), key=lambda item: item[1])}
        merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self._data.merges)
        return json.dumps(vocab, ensure_ascii=False), merges

    def __call__(self, texts):
        """texts: tf.string [N], or a list of str (validated here) -> dict of int32 [N, context_length]."""
        if isinstance(texts, (str, bytes)):
            texts = [texts]
        if isinstance(texts, (list, tuple)):
            texts = tf.constant(_validated_python_texts(texts), tf.string, shape=[len(texts)])
        texts = tf.convert_to_tensor(texts)
        if texts.dtype != tf.string or texts.shape.rank not in (None, 1):
            raise ValueError(f"texts must be a tf.string tensor of shape [N], got {texts.dtype.name} {texts.shape}")
        return self._tokenize(texts)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def _tokenize(self, texts):
        # Bytes that are not UTF-8 become U+FFFD, like bytes.decode("utf-8", errors="replace").
        texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
        words = self._words(self._clean(texts))
        unique_words, word_index = tf.unique(words.flat_values)
        word_tokens = tf.gather(self._tokens_of_words(unique_words), word_index)
        text_tokens = words.with_flat_values(word_tokens).merge_dims(1, 2)

        batch = tf.shape(texts)[0]
        start = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], self.start_token_id))
        end = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], self.end_token_id))
        # As OpenAI's truncate: keep the first context_length - 1 tokens (start included), then the end token.
        kept = tf.concat([start, text_tokens], axis=1)[:, : self.context_length - 1]
        ids = tf.concat([kept, end], axis=1)
        token_ids = ids.to_tensor(0, shape=[None, self.context_length])
        padding_mask = tf.sequence_mask(ids.row_lengths(), self.context_length, dtype=tf.int32)
        return {"token_ids": token_ids, "padding_mask": padding_mask}

    # --- cleaning --------------------------------------------------------------------------------------------

    def _clean(self, texts):
        texts = self._fix_text(texts)
        texts = self._html_unescape(self._html_unescape(texts))
        texts = tf.strings.regex_replace(texts, self._whitespace_run, " ")
        texts = tf.strings.regex_replace(texts, "^ | $", "")
        texts = tf.strings.lower(texts, encoding="utf-8")
        if self._lowercase_gaps is not None:
            texts = self._translate(texts, self._lowercase_gaps, self._lowercase_gap_chars)
        return texts

    def _fix_text(self, texts):
        """ftfy.fix_text without mojibake repair. ftfy skips its HTML unescaping from the first line that
        contains "<" to the end of the text; each fix is repeated until the text stops changing."""
        has_tag = tf.strings.regex_full_match(texts, "(?s).*<.*")
        head = tf.where(has_tag, tf.strings.regex_replace(texts, r"(?s)^((?:[^<\n]*\n)*).*$", r"\1"), texts)
        tail = tf.strings.substr(texts, tf.strings.length(head), tf.strings.length(texts) - tf.strings.length(head))

        def fix_until_unchanged(parts, fix):
            def body(parts, active):
                before = tf.gather(parts, active)
                after = fix(before)
                parts = tf.tensor_scatter_nd_update(parts, active[:, None], after)
                return parts, tf.boolean_mask(active, tf.not_equal(before, after))

            # Printable ASCII without "&" (and tab, LF, FF) is a fixed point of every fix: skip it.
            plain = tf.strings.regex_full_match(parts, r"[\t\n\x0c\x20-\x25\x27-\x7e]*")
            active = tf.cast(tf.where(~plain)[:, 0], tf.int32)
            parts, _ = tf.while_loop(lambda _, active: tf.size(active) > 0, body, [parts, active],
                                     shape_invariants=[parts.shape, tf.TensorShape([None])])
            return parts

        head = fix_until_unchanged(head, lambda t: self._ftfy_fixes(self._ftfy_unescape(t)))
        tail = fix_until_unchanged(tail, self._ftfy_fixes)
        return head + tail

    def _ftfy_fixes(self, texts):
        """ftfy's fixes after unescape_html and fix_encoding, in its order (surrogates cannot occur in UTF-8)."""
        texts = self._translate(texts, self._early_fixes, self._early_fix_chars)
        texts = tf.strings.regex_replace(texts, "\r\n?", "\n")
        texts = tf.strings.regex_replace(texts, _ANSI_ESCAPE, "")
        texts = self._translate(texts, self._late_fixes, self._late_fix_chars)
        return tf_text.normalize_utf8(texts, "NFC")

    @staticmethod
    def _translate(texts, table, domain_class):
        def translate(texts):
            chars = tf.strings.unicode_split(texts, "UTF-8")
            mapped = table.lookup(chars.flat_values)
            mapped = tf.where(tf.equal(mapped, _UNMAPPED), chars.flat_values, mapped)
            return tf.strings.reduce_join(chars.with_flat_values(mapped), axis=-1)

        return _replace_where(texts, tf.strings.regex_full_match(texts, f"(?s).*{domain_class}.*"), translate)

    def _ftfy_unescape(self, texts):
        """ftfy's unescape_html: known "&name;" entities; "&#...;" only when html.unescape leaves no ";"."""
        def replace(entities):
            named = self._ftfy_entities.lookup(entities)
            numeric = self._html_unescape(entities)
            numeric = tf.where(tf.strings.regex_full_match(numeric, ".*;.*"), entities, numeric)
            numeric = tf.where(tf.strings.regex_full_match(entities, "&#.*"), numeric, entities)
            return tf.where(tf.equal(named, _UNMAPPED), numeric, named)

        return _replace_where(texts, tf.strings.regex_full_match(texts, "(?s).*&.*"),
                              lambda t: _replace_matches(t, _FTFY_ENTITY, replace))

    def _html_unescape(self, texts):
        """Python's html.unescape: numeric character references, HTML5 names, and the longest legacy name
        (those valid without ";") that prefixes an unknown name."""
        def replace(refs):
            named = self._html5_entities.lookup(refs)
            name = tf.strings.regex_replace(refs, self._legacy_entity_prefix, r"\1")
            rest = tf.strings.regex_replace(refs, self._legacy_entity_prefix, r"\2")
            prefixed = self._html5_entities.lookup("&" + name) + rest
            has_prefix = tf.strings.regex_full_match(refs, self._legacy_entity_prefix)
            result = tf.where(tf.equal(named, _UNMAPPED), tf.where(has_prefix, prefixed, refs), named)
            is_numeric = tf.strings.regex_full_match(refs, "&#.*")
            return _replace_where(result, is_numeric, self._numeric_charrefs)

        return _replace_where(texts, tf.strings.regex_full_match(texts, "(?s).*&.*"),
                              lambda t: _replace_matches(t, _HTML_CHARREF, replace))

    def _numeric_charrefs(self, refs):
        """"&#65;" / "&#x41;" -> "A" with html.unescape's rules for invalid and out-of-range numbers."""
        is_hex = tf.strings.regex_full_match(refs, "&#[xX].*")
        digits = tf.strings.regex_replace(refs, "^&#[xX]?0*([0-9a-fA-F]*);?$", r"\1")
        too_long = tf.strings.length(digits) > tf.where(is_hex, 6, 7)
        digits = tf.where(too_long, "", digits)
        decimal = tf.strings.to_number(tf.where(is_hex | tf.equal(digits, ""), "0", digits), tf.int64)
        hex_chars = tf.strings.unicode_decode(tf.where(is_hex, digits, ""), "UTF-8")
        lengths = hex_chars.row_lengths()
        chars = tf.cast(hex_chars.flat_values, tf.int64)
        nibbles = tf.where(chars <= ord("9"), chars - ord("0"), tf.bitwise.bitwise_or(chars, 32) - 87)
        place = tf.repeat(lengths, lengths) - 1 - tf.ragged.range(lengths).flat_values
        hexadecimal = tf.math.unsorted_segment_sum(tf.bitwise.left_shift(nibbles, 4 * place),
                                                   hex_chars.value_rowids(), tf.size(lengths))
        number = tf.where(too_long, tf.constant(0x110000, tf.int64), tf.where(is_hex, hexadecimal, decimal))

        special = self._invalid_charrefs.lookup(number)
        out_of_range = ((number >= 0xD800) & (number <= 0xDFFF)) | (number > 0x10FFFF)
        position = tf.searchsorted(self._invalid_codepoints, number[None, :])[0]
        position = tf.minimum(position, tf.size(self._invalid_codepoints, out_type=position.dtype) - 1)
        dropped = tf.equal(tf.gather(self._invalid_codepoints, position), number)
        code_point = tf.cast(tf.where(out_of_range | dropped, tf.constant(0x20, tf.int64), number), tf.int32)
        char = tf.strings.unicode_encode(tf.RaggedTensor.from_tensor(code_point[:, None]), "UTF-8")
        char = tf.where(dropped, "", tf.where(out_of_range, "\ufffd", char))
        return tf.where(tf.equal(special, _UNMAPPED), char, special)

    def _words(self, texts):
        """re.findall(pattern, text) for cleaned texts: ragged [N, (words)]. Every match gets spaces around it
        and the text is split at spaces, which no match contains; what is left between matches (only U+0345 can
        be) is dropped like findall drops it. Faster than tensorflow-text's regex_split with kept delimiters."""
        pieces = tf.strings.split(tf.strings.regex_replace(texts, self._word_pattern, r" \0 "))
        return tf.ragged.boolean_mask(
            pieces, pieces.with_flat_values(tf.strings.regex_full_match(pieces.flat_values, self._word_pattern)))

    # --- BPE ---------------------------------------------------------------------------------------------------

    def _tokens_of_words(self, words):
        """Token ids of each (unique) word: from the cache, else by BPE. Returns ragged int32 [W, (tokens)]."""
        slot = self._cache.lookup(words)
        hit = slot >= 0
        cached = tf.gather(self._cached_tokens, tf.boolean_mask(slot, hit))
        computed = self._bpe(tf.boolean_mask(words, ~hit))
        order = tf.concat([tf.where(hit)[:, 0], tf.where(~hit)[:, 0]], axis=0)
        return tf.gather(tf.concat([cached, computed], axis=0), tf.math.invert_permutation(order))

    def _bpe(self, words):
        """All words at once: each loop iteration merges, in every word, all occurrences of its best-ranked
        pair, left to right, as OpenAI's bpe() does one merge per iteration for one word."""
        byte_strings = tf.strings.bytes_split(words)
        row_lengths = tf.cast(byte_strings.row_lengths(), tf.int32)
        is_final = tf.equal(tf.ragged.range(row_lengths).flat_values + 1, tf.repeat(row_lengths, row_lengths))
        values = tf.where(is_final, self._final_byte_ids.lookup(byte_strings.flat_values),
                          self._byte_ids.lookup(byte_strings.flat_values))

        def merge_step(values, row_lengths, _):
            rows = tf.repeat(tf.range(tf.size(row_lengths)), row_lengths)
            pair_rows = rows[:-1]
            pair_keys = tf.cast(values[:-1], tf.int64) * self._id_space + tf.cast(values[1:], tf.int64)
            ranks = tf.where(tf.equal(pair_rows, rows[1:]), self._merge_ranks.lookup(pair_keys), _NO_MERGE)
            best = tf.math.unsorted_segment_min(ranks, pair_rows, tf.size(row_lengths))
            is_best = tf.equal(ranks, tf.gather(best, pair_rows)) & (ranks < _NO_MERGE)
            # Runs of matches happen only for pairs like ("a", "a") in "aaa": merge the 1st, 3rd, ... of a run.
            run_start = is_best & ~tf.concat([[False], is_best], axis=0)[:-1]
            positions = tf.range(tf.size(is_best))
            # The trailing 0 keeps the gather valid where there is no run (those positions are not merged).
            run_starts = tf.concat([tf.boolean_mask(positions, run_start), [0]], axis=0)
            run = tf.maximum(tf.cumsum(tf.cast(run_start, tf.int32)) - 1, 0)
            merge = is_best & tf.equal((positions - tf.gather(run_starts, run)) % 2, 0)

            merged = tf.gather(self._merge_results, tf.where(merge, ranks, 0))
            values = tf.where(tf.concat([merge, [False]], axis=0), tf.concat([merged, [0]], axis=0), values)
            values = tf.boolean_mask(values, ~tf.concat([[False], merge], axis=0))
            merges_per_row = tf.math.unsorted_segment_sum(tf.cast(merge, tf.int32), pair_rows, tf.size(row_lengths))
            return values, row_lengths - merges_per_row, tf.reduce_any(merge)

        values, row_lengths, _ = tf.while_loop(
            lambda values, row_lengths, merged: merged, merge_step, [values, row_lengths, tf.size(values) > 0],
            shape_invariants=[tf.TensorShape([None]), row_lengths.shape, tf.TensorShape([])])
        return tf.RaggedTensor.from_row_lengths(values, tf.cast(row_lengths, tf.int64))

    # --- decoding ----------------------------------------------------------------------------------------------

    def detokenize(self, token_ids):
        """For debugging: ids -> tf.string [N], like OpenAI's decode ("</w>" -> " ", special tokens spelt out).
        In a dense [N, L] input everything after the last end token is padding and is dropped."""
        token_ids = tf.convert_to_tensor(token_ids) if not isinstance(token_ids, tf.RaggedTensor) else token_ids
        if not token_ids.dtype.is_integer or token_ids.shape.rank != 2:
            raise ValueError(f"token_ids must be integer [N, L], got {token_ids.dtype.name} {token_ids.shape}")
        if not isinstance(token_ids, tf.RaggedTensor):
            token_ids = tf.cast(token_ids, tf.int32)
            is_end = tf.cast(tf.equal(token_ids, self.end_token_id), tf.int32)
            ends_from_here = tf.cumsum(is_end, axis=1, reverse=True)
            has_end = ends_from_here[:, :1] > 0
            token_ids = tf.ragged.boolean_mask(token_ids, (ends_from_here > 0) | ~has_end)
        return self._detokenize(tf.cast(token_ids, tf.int32))

    @tf.function(autograph=False)
    def _detokenize(self, token_ids):
        tf.debugging.assert_less(token_ids.flat_values, self._id_space,
                                 message="token_ids contains ids outside the vocabulary")
        tf.debugging.assert_non_negative(token_ids.flat_values, message="token_ids contains negative ids")
        pieces = token_ids.with_flat_values(tf.gather(self._token_bytes, token_ids.flat_values))
        texts = tf.strings.reduce_join(pieces, axis=-1)
        texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
        return tf.strings.regex_replace(texts, END_OF_WORD, " ")

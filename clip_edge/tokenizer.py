"""CLIP's byte-level BPE tokenizer, built from TensorFlow and tensorflow-text ops only.

Everything between a string tensor and the token ids is graph ops (no tf.py_function, no numpy), so the tokenizer
is saved inside a SavedModel and needs only tensorflow + tensorflow_text to run. The reference is OpenAI's
tokenizer as shipped in open_clip (SimpleTokenizer, clean="lower", ftfy installed), whose steps are, in order:

    cleaning (clip_edge.text_cleaning.TextCleaner: ftfy.fix_text, html.unescape twice, whitespace, str.lower)
    -> pre-tokenisation regex -> UTF-8 bytes to symbols -> BPE by merge rank -> [start] + ids + [end],
    truncated to context_length keeping the end token last, padded with 0

docs/tokenizer.md lists every known difference and its cause.
"""

import dataclasses
import gzip
import hashlib
import json
import os

import tensorflow as tf

from clip_edge.messages import quoted
from clip_edge.text_cleaning import TextCleaner, texts_tensor
from clip_edge.text_cleaning_tables import (PYTHON_WHITESPACE, cleaning_tables, graph_class_members, hex_ranges,
                                            re2_chars, re2_escape)

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

# The rank of a pair that no merge joins.
_NO_MERGE = 2**31 - 1


# The bytes that stand for themselves in GPT-2's byte map, as inclusive ranges: printable Latin-1 ("!" to "~",
# "¡" to "¬", "®" to "ÿ").
PRINTABLE_BYTES = ((0x21, 0x7E), (0xA1, 0xAC), (0xAE, 0xFF))


def byte_to_unicode():
    """GPT-2's reversible map from a byte to the character that stands for it in BPE symbols.

    PRINTABLE_BYTES stand for themselves; the other 68 (controls, space, no-break space, soft hyphen) move to
    U+0100 upwards in byte order, so no symbol contains whitespace. Insertion order is OpenAI's vocabulary order
    (ids 0..255).
    """
    printable = [byte for first, last in PRINTABLE_BYTES for byte in range(first, last + 1)]
    mapping = {byte: chr(byte) for byte in printable}
    for shift, byte in enumerate(b for b in range(256) if b not in mapping):
        mapping[byte] = chr(256 + shift)
    return mapping


# CLIP's contractions, matched case-insensitively before letter runs by the pre-tokenisation pattern.
CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")


def _case_variants(text):
    """{c: every character RE2's (?i) matches for c} for the ASCII letters of `text` (Basic Multilingual Plane,
    where all of their case-folding partners are)."""
    bmp = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    bmp_tensor = tf.constant([c.encode("utf-8") for c in bmp])
    variants = {}
    for letter in sorted({c for c in text if c.isascii() and c.isalpha()}):
        hits = tf.strings.regex_full_match(bmp_tensor, "(?i)" + letter).numpy()
        variants[letter] = "".join(c for c, hit in zip(bmp, hits) if hit and c != letter)
    return variants


def _pre_tokenization_tables(special_tokens):
    """The "pre_tokenization" part of assets/text_cleaning.json (docs/tokenizer.md). special_tokens: {text
    spelling recognised inside texts: token id}. The letter and number classes are read off the graph's RE2."""
    letters, numbers = graph_class_members(r"\p{L}", r"\p{N}")
    return {
        "special_tokens": special_tokens,
        "contractions": list(CONTRACTIONS),
        "case_variants": _case_variants("".join(special_tokens) + "".join(CONTRACTIONS)),
        "letters": hex_ranges(letters),
        "numbers": hex_ranges(numbers),
        "unmatched": hex_ranges([0x345]),
    }


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
            raise ValueError(f"{source}: entry {quoted(token)}: {quoted(token_id)} is not a str token with an id >= 0")
        if token_id in seen:
            raise ValueError(f"{source}: tokens {quoted(seen[token_id])} and {quoted(token)} share id {token_id}")
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
            raise ValueError(f"{label}: {quoted(line)} is not two space-separated symbols")
        if tuple(parts) in pairs:
            raise ValueError(f"{label}: merge {quoted(line)} repeats an earlier one")
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


class CLIPTokenizer(tf.Module):
    """OpenAI CLIP's tokenizer as a tf.Module: tf.string [N] -> token_ids, padding_mask int32 [N, context_length].

    Args:
      vocabulary: dict token -> id, or path to a Hugging Face vocab.json.
      merges: list of "a b" strings in rank order, or path to a merges.txt (or OpenAI's .txt.gz).
      context_length: output length; longer texts are cut to it with the end token kept last.

    start_token_id, end_token_id: the special tokens' ids in `vocabulary` (49406 and 49407 in OpenAI's).
    cleaner: the TextCleaner (clip_edge.text_cleaning) that cleans texts before pre-tokenisation.
    """

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
        # Bytes of text the longest token stands for (32 in OpenAI's vocabulary: eight 4-byte emoji).
        self._longest_token_bytes = max(len(b.removesuffix(END_OF_WORD.encode())) for b in token_bytes)

        # OpenAI's cleaning (ftfy, html.unescape, whitespace, lowercasing) comes before pre-tokenisation.
        self.cleaner = TextCleaner()
        self._concrete = None  # _traced()
        # CLIP's pattern. The reference compiles all of it with re.IGNORECASE; that matters only for the special
        # tokens and contractions ("'ſ" is "'s"), so only they are case-insensitive here. One more effect of it:
        # U+0345 (combining ypogegrammeni, whose case partner is the letter ι) is matched by no alternative and
        # re.findall skips it; it is left out of the last class so that it goes unmatched here too. Its \s is
        # Unicode whitespace; after cleaning, U+0020 is the only whitespace left.
        specials = "|".join(re2_escape(t) for t in special_names)
        self._word_pattern = ("(?i:" + specials + "|" + "|".join(CONTRACTIONS) + r")|\p{L}+|\p{N}|[^"
                              + re2_chars(PYTHON_WHITESPACE) + r"\p{L}\p{N}\x{345}]+")

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

    def text_cleaning_tables(self):
        """The export's assets/text_cleaning.json as a dict: the cleaner's tables
        (text_cleaning_tables.cleaning_tables()) and this tokenizer's pre-tokenisation, with its special-token
        spellings. Takes a few seconds."""
        tokens = self._data.tokens
        special_tokens = {t: tokens[t] for t in (*START_TOKEN_NAMES, *END_TOKEN_NAMES) if t in tokens}
        return {**cleaning_tables(), "pre_tokenization": _pre_tokenization_tables(special_tokens)}

    def vocabulary_files(self):
        """(vocab.json text, merges.txt text) in Hugging Face's layout, with its special-token spellings."""
        renamed = {START_TOKEN_NAMES[0]: HF_START_TOKEN, END_TOKEN_NAMES[0]: HF_END_TOKEN}
        vocab = {renamed.get(t, t): i for t, i in sorted(self._data.tokens.items(), key=lambda item: item[1])}
        merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self._data.merges)
        return json.dumps(vocab, ensure_ascii=False), merges

    def __call__(self, texts):
        """texts: tf.string [N], or a list of str (validated here) -> dict of int32 [N, context_length]."""
        return self._traced()(texts_tensor(texts))

    def _traced(self):
        """_tokenize's one trace. A tf.function traces once per calling context: once for the functions of a
        SavedModel that call it and once more for eager calls (the exporter's calibration sentences), and tracing
        the cleaning graph takes seconds (about 6 s of a small export). One trace, made in the eager context, is
        called from both."""
        if self._concrete is None:
            with tf.init_scope():
                self._concrete = self._tokenize.get_concrete_function()
        return self._concrete

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def _tokenize(self, texts):
        words = self._words_that_can_be_kept(self._words(self.cleaner.clean(texts)))
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

    # --- pre-tokenisation -----------------------------------------------------------------------------------

    def _words(self, texts):
        """re.findall(pattern, text) for cleaned texts: ragged [N, (words)]. Every match gets spaces around it
        and the text is split at spaces, which no match contains; what is left between matches (only U+0345 can
        be) is dropped like findall drops it. Faster than tensorflow-text's regex_split with kept delimiters."""
        pieces = tf.strings.split(tf.strings.regex_replace(texts, self._word_pattern, r" \0 "))
        return tf.ragged.boolean_mask(
            pieces, pieces.with_flat_values(tf.strings.regex_full_match(pieces.flat_values, self._word_pattern)))

    def _words_that_can_be_kept(self, words):
        """The words whose tokens can reach the output, cut to a bounded length: BPE costs up to the square of a
        word's length (a megabyte without spaces took minutes), and only context_length - 2 text tokens are kept.

        Each token stands for at most `longest` bytes, so words that start after the first context_length - 2
        words, or at or beyond byte budget = (context_length - 2) x longest of the text's words, cannot add a
        kept token: the words before them already give that many tokens. Dropping them changes nothing. A word
        that reaches past the budget is cut at byte 2 x budget: its tokens within the budget are those of the
        whole word unless a chain of BPE merges reaches across the `budget` bytes in between; none does in
        OpenAI's vocabulary on the long texts tested against the reference."""
        kept_tokens = self.context_length - 2
        budget = kept_tokens * self._longest_token_bytes
        lengths = tf.strings.length(words.flat_values)  # bytes
        before = tf.cumsum(lengths, exclusive=True)
        row_first = tf.gather(tf.concat([before, [tf.reduce_sum(lengths)]], 0), words.row_starts())
        starts = before - tf.gather(row_first, words.value_rowids())  # byte offset of each word in its row
        index = tf.ragged.range(words.row_lengths()).flat_values
        keep = (index < kept_tokens) & (starts < budget)
        cut = tf.strings.substr(words.flat_values, tf.zeros_like(lengths),
                                tf.clip_by_value(2 * budget - starts, 0, lengths))
        return tf.ragged.boolean_mask(words.with_flat_values(cut), words.with_flat_values(keep))

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

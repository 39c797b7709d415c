"""OpenAI CLIP's text cleaning as a TensorFlow graph (TensorFlow and tensorflow-text ops only): TextCleaner.

TextCleaner is a tf.Module of its own, tf.string [N] -> tf.string [N]; clip_edge.tokenizer.CLIPTokenizer composes it
with CLIP's pre-tokenisation and BPE. The reference is what OpenAI's tokenizer as shipped in open_clip
(SimpleTokenizer, clean="lower", ftfy installed) does to a text before pre-tokenisation:

    basic_clean: ftfy.fix_text -> html.unescape twice -> strip
    whitespace_clean: runs of whitespace -> one space -> strip
    then str.lower

ftfy.fix_text is reproduced with its mojibake repair (ftfy.fix_encoding: a heuristic of character sequences, then
re-decoding with single-byte code pages, also of runs within a line), except where that needs ftfy's
"utf-8-variants" codec. docs/tokenizer.md lists every known difference and its cause.

The tables and patterns the graph applies come from clip_edge.text_cleaning_tables, which also writes them as data
(cleaning_tables(), the export's assets/text_cleaning.json) for cleaners outside TensorFlow.
"""

import dataclasses
import html.entities

import tensorflow as tf
import tensorflow_text as tf_text

from clip_edge.text_cleaning_tables import (ANSI_ESCAPE, A_GRAVE_WORD_EXCEPTIONS, FTFY_ENTITY, HTML_CHARREF, LOSSY_UTF8,
                                            MAX_RUN_DEPTH, MOJIBAKE_ENCODINGS, PLAIN_LINE, PYTHON_WHITESPACE,
                                            SPACED_UTF8, UTF8_VARIANTS, c1_to_windows_1252, embedded_utf8_pattern,
                                            ftfy_character_fixes, ftfy_html_entities, ftfy_late_character_fixes,
                                            html_charref_replacements, html_dropped_code_points, is_sloppy,
                                            lowercase_gaps, mojibake_pattern, re2_alternatives, re2_chars,
                                            restores_byte_a0, single_byte_chars)

# Never a replacement value of the character maps the graph looks up, so a lookup returning it means "not in the map".
_UNMAPPED = "\x00unmapped\x00"


def texts_tensor(texts):
    """texts as a tf.string [N] tensor: a str or bytes (a batch of one), a list of them, or a tensor. Python items
    are checked here; a bad one is a ValueError naming its index."""
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    if isinstance(texts, (list, tuple)):
        texts = tf.constant(_validated_python_texts(texts), tf.string, shape=[len(texts)])
    texts = tf.convert_to_tensor(texts)
    if texts.dtype != tf.string or texts.shape.rank not in (None, 1):
        raise ValueError(f"texts must be a tf.string tensor of shape [N], got {texts.dtype.name} {texts.shape}")
    return texts


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


@dataclasses.dataclass(frozen=True)
class _Untracked:
    """A plain object, so that tf.Module does not track what it holds: a SavedModel of a module holding a
    TextCleaner (CLIPTokenizer's) would otherwise save a second, unused copy of the cleaning graph."""

    function: object


class TextCleaner(tf.Module):
    """OpenAI CLIP's text cleaning as a tf.Module: tf.string [N] -> tf.string [N] (see the module docstring).

    cleaner(texts) takes a str, a list of str (checked here) or a tf.string [N] tensor; clean(texts) is the same
    graph for use inside another tf.function (CLIPTokenizer's). Every table comes from clip_edge.text_cleaning_tables
    (the standard library, ftfy's rules as written there and the graph's own ops).
    """

    def __init__(self):
        super().__init__(name="text_cleaner")
        self._early_fixes = _string_table(ftfy_character_fixes(), _UNMAPPED)
        self._early_fix_chars = "[" + re2_chars(ftfy_character_fixes()) + "]"
        self._late_fixes = _string_table(ftfy_late_character_fixes(), _UNMAPPED)
        self._late_fix_chars = "[" + re2_chars(ftfy_late_character_fixes()) + "]"
        self._ftfy_entities = _string_table(ftfy_html_entities(), _UNMAPPED)
        self._html5_entities = _string_table({"&" + k: v for k, v in html.entities.html5.items()}, _UNMAPPED)
        legacy_names = [name for name in html.entities.html5 if not name.endswith(";")]
        self._legacy_entity_prefix = "(?s)^&(" + re2_alternatives(legacy_names) + ")(.*)$"
        charrefs = html_charref_replacements()
        self._charref_replacements = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(charrefs), tf.int64), tf.constant(list(charrefs.values()), tf.string)), _UNMAPPED)
        self._dropped_code_points = tf.constant(html_dropped_code_points(), tf.int64)
        self._whitespace_run = "[" + re2_chars(PYTHON_WHITESPACE) + "]+"
        # Mojibake repair (ftfy.fix_encoding): one table for all code pages, chr(code page index) + character ->
        # the Latin-1 character of its byte; a character missing from it cannot be encoded in that code page.
        code_page_bytes = {}
        for index, encoding in enumerate(MOJIBAKE_ENCODINGS):
            chars = single_byte_chars(encoding)
            if len(set(chars)) != 256:
                raise AssertionError(f"{encoding} is not a one-to-one map of bytes")
            code_page_bytes.update({chr(index) + c: chr(b) for b, c in enumerate(chars)})
        self._code_page_bytes = _string_table(code_page_bytes, _UNMAPPED)
        self._latin1_to_byte = _string_table({chr(b): bytes([b]) for b in range(256)}, _UNMAPPED)
        self._c1_fixes = _string_table(c1_to_windows_1252(), _UNMAPPED)
        self._mojibake_search = "(?s).*(?:" + mojibake_pattern() + ").*"
        self._embedded_utf8 = embedded_utf8_pattern()
        self._lowercase_gaps = _string_table(lowercase_gaps(), _UNMAPPED) if lowercase_gaps() else None
        self._lowercase_gap_chars = "[" + re2_chars(lowercase_gaps()) + "]"
        self._traced = _Untracked(tf.function(self.clean, input_signature=[tf.TensorSpec([None], tf.string)],
                                              autograph=False))

    def __call__(self, texts):
        """texts: a str, a list of str or a tf.string [N] tensor -> the cleaned texts, tf.string [N]."""
        return self._traced.function(texts_tensor(texts))

    def clean(self, texts):
        """The cleaning as graph ops: tf.string [N] -> tf.string [N]. Bytes that are not UTF-8 become U+FFFD, like
        bytes.decode("utf-8", errors="replace"); then ftfy.fix_text, html.unescape twice, whitespace, lowercase."""
        texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
        texts = self._fix_text(texts)
        texts = self._html_unescape(self._html_unescape(texts))
        texts = tf.strings.regex_replace(texts, self._whitespace_run, " ")
        texts = tf.strings.regex_replace(texts, "^ | $", "")
        texts = tf.strings.lower(texts, encoding="utf-8")
        if self._lowercase_gaps is not None:
            texts = self._translate(texts, self._lowercase_gaps, self._lowercase_gap_chars)
        return texts

    def _fix_text(self, texts):
        """ftfy.fix_text. As ftfy, each line (with its "\\n") is fixed on its own, every fix repeated until the line
        stops changing, and HTML unescaping is skipped from the first line that contains "<" to the end."""
        lines = tf.strings.split(texts, "\n")
        last = tf.equal(tf.ragged.range(lines.row_lengths()).flat_values + 1,
                        tf.repeat(lines.row_lengths(), lines.row_lengths()))
        originals = tf.where(last, lines.flat_values, lines.flat_values + "\n")
        has_tag = tf.cast(tf.strings.regex_full_match(originals, "(?s).*<.*"), tf.int64)
        tags_per_text = tf.math.unsorted_segment_sum(has_tag, lines.value_rowids(), lines.nrows())
        tags_so_far = tf.cumsum(has_tag) - tf.repeat(tf.cumsum(tags_per_text, exclusive=True), lines.row_lengths())
        unescape = tf.equal(tags_so_far, 0)

        def body(parts, no_repair, active):
            before = tf.gather(parts, active)
            text = tf.where(tf.gather(unescape, active), self._ftfy_unescape(before), before)
            repaired, unsure = self._fix_encoding(text, tf.gather(no_repair, active))
            after = self._ftfy_fixes(repaired)
            # A line whose repair we cannot reproduce starts again from the original, without mojibake repair.
            after = tf.where(unsure, tf.gather(originals, active), after)
            parts = tf.tensor_scatter_nd_update(parts, active[:, None], after)
            no_repair = tf.tensor_scatter_nd_update(no_repair, active[:, None], tf.gather(no_repair, active) | unsure)
            return parts, no_repair, tf.boolean_mask(active, tf.not_equal(before, after) | unsure)

        # A line of PLAIN_LINE is a fixed point of every fix: skip it.
        plain = tf.strings.regex_full_match(originals, PLAIN_LINE)
        active = tf.cast(tf.where(~plain)[:, 0], tf.int32)
        parts, _, _ = tf.while_loop(lambda parts, no_repair, active: tf.size(active) > 0, body,
                                    [originals, tf.zeros_like(plain), active],
                                    shape_invariants=[originals.shape, plain.shape, tf.TensorShape([None])])
        return tf.strings.reduce_join(lines.with_flat_values(parts), axis=-1)

    # --- mojibake (ftfy.fix_encoding) ----------------------------------------------------------------------------

    def _fix_encoding(self, lines, skip, depth=0):
        """ftfy.fix_encoding of each line (not of those where `skip`): one repair step repeated until the line
        stops changing. Returns (lines, unsure): unsure where the repair needs something not reproduced here
        (the utf-8-variants codec, runs within runs deeper than MAX_RUN_DEPTH); those lines are returned as given.
        `depth` counts the calls of fix_encoding on runs found by decode_inconsistent_utf8 it is nested in."""
        def body(step, lines, unsure, active):
            before = tf.gather(lines, active)
            after, step_unsure = self._fix_encoding_step(before, depth)
            lines = tf.tensor_scatter_nd_update(lines, active[:, None], after)
            unsure = tf.tensor_scatter_nd_update(unsure, active[:, None], step_unsure)
            return step + 1, lines, unsure, tf.boolean_mask(active, tf.not_equal(before, after) & ~step_unsure)

        active = tf.cast(tf.where(~skip)[:, 0], tf.int32)
        _, fixed, unsure = tf.while_loop(
            lambda step, lines, unsure, active: tf.size(active) > 0, body,
            [tf.constant(0), lines, tf.zeros_like(skip), active],
            shape_invariants=[tf.TensorShape([]), lines.shape, skip.shape, tf.TensorShape([None])])[:3]
        return tf.where(unsure, lines, fixed), unsure

    def _fix_encoding_step(self, lines, depth):
        """One step of ftfy's fix_encoding on lines that are not ASCII and look like mojibake (others are kept):
        re-decode with the first code page that can encode the line and gives UTF-8; else decode the runs of
        UTF-8-like characters in it (decode_inconsistent_utf8); else C1 controls as Windows-1252."""
        looks_bad = (~tf.strings.regex_full_match(lines, "[\\x00-\\x7f]*")
                     & tf.strings.regex_full_match(lines, self._mojibake_search))
        indices = tf.where(looks_bad)
        bad = tf.gather_nd(lines, indices)
        fixed, found, unsure = self._redecode(bad)
        rest = ~found & ~unsure
        rest_indices = tf.where(rest)
        runs_fixed, nested = self._decode_inconsistent_utf8(tf.gather_nd(bad, rest_indices), depth)
        runs_fixed = tf.tensor_scatter_nd_update(bad, rest_indices, runs_fixed)
        nested = tf.scatter_nd(rest_indices, tf.cast(nested, tf.int32), tf.shape(bad, out_type=tf.int64)) > 0
        changed = rest & ~nested & tf.not_equal(runs_fixed, bad)
        fixed = tf.where(changed, runs_fixed, fixed)
        rest &= ~changed
        nested &= rest
        unsure |= nested
        rest &= ~nested
        # Latin-1 read as Windows-1252 (ftfy's next two steps come to the same): the C1 controls it defines.
        fixed = tf.where(rest, self._translate(bad, self._c1_fixes, "[\\x{80}-\\x{9f}]"), fixed)
        fixed = tf.where(unsure, bad, fixed)
        return (tf.tensor_scatter_nd_update(lines, indices, fixed),
                tf.scatter_nd(indices, tf.cast(unsure, tf.int32), tf.shape(lines, out_type=tf.int64)) > 0)

    def _redecode(self, lines):
        """The first of ftfy's code pages that can encode the line and whose bytes are UTF-8 (after restoring bytes
        A0 and, for the sloppy ones, marking lost bytes). Returns (decoded, found, unsure); unsure where that code
        page's bytes need the utf-8-variants codec, which we do not reproduce. All code pages at once: row
        page * len(lines) + line."""
        pages = len(MOJIBAKE_ENCODINGS)
        chars = tf.strings.unicode_split(lines, "UTF-8")
        char_count = tf.size(chars.flat_values)
        page_of_char = tf.repeat(tf.range(pages), char_count)
        page_names = tf.constant([chr(index) for index in range(pages)])
        keys = tf.strings.join([tf.gather(page_names, page_of_char), tf.tile(chars.flat_values, [pages])])
        byte_chars = tf.RaggedTensor.from_row_lengths(self._code_page_bytes.lookup(keys),
                                                      tf.tile(chars.row_lengths(), [pages]))
        encodable = tf.reduce_all(tf.not_equal(byte_chars, _UNMAPPED), axis=1)
        as_bytes = tf.strings.reduce_join(byte_chars, axis=-1)
        page_of_row = tf.repeat(tf.range(pages), tf.size(lines))
        restores = tf.constant([restores_byte_a0(encoding) for encoding in MOJIBAKE_ENCODINGS])
        sloppy = tf.constant([is_sloppy(encoding) for encoding in MOJIBAKE_ENCODINGS])
        as_bytes = _replace_where(as_bytes, encodable & tf.gather(restores, page_of_row), self._restore_byte_a0)
        as_bytes = _replace_where(as_bytes, encodable & tf.gather(sloppy, page_of_row),
                                  lambda texts: tf.strings.regex_replace(texts, LOSSY_UTF8, "\u00ef\u00bf\u00bd"))
        variant = tf.strings.regex_full_match(as_bytes, "(?s).*(?:" + UTF8_VARIANTS + ").*")
        decoded, is_utf8 = self._decode_byte_chars(as_bytes)
        # ftfy stops at the first encodable page whose bytes decode (or would need utf-8-variants to).
        stops = tf.reshape(encodable & (is_utf8 | variant), [pages, -1])
        page = tf.argmax(tf.cast(stops, tf.int32), axis=0, output_type=tf.int32)
        row = page * tf.size(lines) + tf.range(tf.size(lines))
        stopped = tf.reduce_any(stops, axis=0)
        found = stopped & ~tf.gather(variant, row)
        return tf.where(found, tf.gather(decoded, row), lines), found, stopped & ~found

    @staticmethod
    def _restore_byte_a0(byte_chars):
        """ftfy's restore_byte_a0 on text whose characters stand for bytes. (The look-ahead of ftfy's "Ã " rule
        is done by first hiding the space of the exceptions behind U+E000, which no byte stands for.)"""
        def needs_work(texts):
            return tf.strings.regex_full_match(texts, "(?s).*(?:" + SPACED_UTF8 + ").*")

        def restore(texts):
            texts = tf.strings.regex_replace(texts, A_GRAVE_WORD_EXCEPTIONS, "\u00c3\ue000\\1")
            texts = tf.strings.regex_replace(texts, r"\x{c3} ", "\u00c3\u00a0 ")
            texts = tf.strings.regex_replace(texts, "\ue000", " ")
            return _replace_matches(texts, SPACED_UTF8, lambda runs: tf.strings.regex_replace(runs, " ", "\u00a0"))

        return _replace_where(byte_chars, needs_work(byte_chars), restore)

    def _decode_byte_chars(self, byte_chars):
        """Text of characters U+0000..U+00FF standing for bytes -> (those bytes, whether they are UTF-8)."""
        chars = tf.strings.unicode_split(byte_chars, "UTF-8")
        raw = tf.strings.reduce_join(chars.with_flat_values(self._latin1_to_byte.lookup(chars.flat_values)), axis=-1)
        # Each invalid sequence becomes a U+FFFD; a U+FFFD in valid UTF-8 is the bytes EF BF BD.
        decoded = tf.strings.unicode_transcode(raw, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)

        def count_fffd(texts):
            return tf.strings.length(tf.strings.regex_replace(texts, "[^\\x{fffd}]+", ""), unit="UTF8_CHAR")

        return raw, tf.equal(count_fffd(decoded),
                             count_fffd(tf.strings.regex_replace(byte_chars, "\u00ef\u00bf\u00bd", "\ufffd")))

    def _decode_inconsistent_utf8(self, lines, depth):
        """ftfy's decode_inconsistent_utf8: each run of UTF-8-like characters shorter than the line that looks
        like mojibake is repaired on its own (ftfy.fix_encoding of the run, which may find runs in turn). Returns
        (lines, unsure); recursion deeper than MAX_RUN_DEPTH is not reproduced, such lines are unsure."""
        pieces = tf_text.regex_split("\x01" + lines, self._embedded_utf8, keep_delim_regex_pattern=self._embedded_utf8)
        flat = pieces.flat_values
        run = tf.strings.regex_replace(flat, "(?s)^.", "")
        before = tf.strings.regex_replace(flat, "(?s)^(.).*$", r"\1")
        line_length = tf.gather(tf.strings.length(lines, unit="UTF8_CHAR"), pieces.value_rowids())
        is_run = (tf.strings.regex_full_match(flat, self._embedded_utf8)
                  & (tf.strings.length(run, unit="UTF8_CHAR") < line_length)
                  & tf.strings.regex_full_match(run, self._mojibake_search))
        if depth >= MAX_RUN_DEPTH:
            return lines, tf.math.unsorted_segment_max(tf.cast(is_run, tf.int32), pieces.value_rowids(),
                                                       tf.size(lines, out_type=tf.int64)) > 0
        indices = tf.where(is_run)
        repaired, unsure = self._fix_encoding(tf.gather_nd(run, indices), tf.zeros_like(indices[:, 0], tf.bool),
                                              depth=depth + 1)
        flat = tf.tensor_scatter_nd_update(flat, indices, tf.gather_nd(before, indices) + repaired)
        unsure = tf.scatter_nd(indices, tf.cast(unsure, tf.int32), tf.shape(flat, out_type=tf.int64))
        joined = tf.strings.reduce_join(pieces.with_flat_values(flat), axis=-1)
        line_unsure = tf.math.unsorted_segment_max(unsure, pieces.value_rowids(),
                                                   tf.size(lines, out_type=tf.int64)) > 0
        return tf.strings.regex_replace(joined, "(?s)^.", ""), line_unsure

    def _ftfy_fixes(self, texts):
        """ftfy's fixes after unescape_html and fix_encoding, in its order (surrogates cannot occur in UTF-8)."""
        texts = self._translate(texts, self._early_fixes, self._early_fix_chars)
        texts = tf.strings.regex_replace(texts, "\r\n?", "\n")
        texts = tf.strings.regex_replace(texts, ANSI_ESCAPE, "")
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
                              lambda t: _replace_matches(t, FTFY_ENTITY, replace))

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
                              lambda t: _replace_matches(t, HTML_CHARREF, replace))

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

        special = self._charref_replacements.lookup(number)
        out_of_range = ((number >= 0xD800) & (number <= 0xDFFF)) | (number > 0x10FFFF)
        position = tf.searchsorted(self._dropped_code_points, number[None, :])[0]
        position = tf.minimum(position, tf.size(self._dropped_code_points, out_type=position.dtype) - 1)
        dropped = tf.equal(tf.gather(self._dropped_code_points, position), number)
        code_point = tf.cast(tf.where(out_of_range | dropped, tf.constant(0x20, tf.int64), number), tf.int32)
        char = tf.strings.unicode_encode(tf.RaggedTensor.from_tensor(code_point[:, None]), "UTF-8")
        char = tf.where(dropped, "", tf.where(out_of_range, "\ufffd", char))
        return tf.where(tf.equal(special, _UNMAPPED), char, special)

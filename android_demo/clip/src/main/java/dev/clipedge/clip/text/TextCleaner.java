package dev.clipedge.clip.text;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The text cleaning of CLIP's tokenizer, equal to the exported SavedModel's (clip_edge/text_cleaning.py, which
 * reproduces OpenAI's: ftfy.fix_text with its mojibake repair, html.unescape twice, whitespace collapsed and
 * stripped, lowercasing), driven by the export's assets/text_cleaning.json. Each step below names the graph
 * method it mirrors; where the graph differs from ftfy (mojibake it cannot repair), this follows the graph.
 *
 * <p>Immutable after construction and safe to share between threads.
 */
public final class TextCleaner {
  /** Receives the cleaned text of one line of the input at a time; returns false to stop. */
  public interface LineSink {
    boolean accept(String cleanedLine);
  }

  private static final String REPLACEMENT = "\ufffd";
  /** Longer than any match of ftfy's entity pattern (checked when the tables are read). */
  private static final int MAX_ENTITY_LENGTH = 40;

  private final CodePointSet whitespace;
  // ftfy.fix_text
  private final boolean[] plainAscii = new boolean[128];
  private final Pattern ftfyEntity;
  private final Map<String, String> extraEntities;
  private final CharMap characterFixes;
  private final CharMap lateCharacterFixes;
  private final Pattern ansiEscape;
  private final Pattern crLf = Pattern.compile("\r\n?");
  private final Nfc nfc;
  // html.unescape
  private final Pattern charref;
  private final Map<String, String> html5;
  private final Map<Integer, String> invalidCharrefs;
  private final CodePointSet invalidCodepoints;
  // ftfy.fix_encoding
  private final int maxRunDepth;
  private final MojibakeHeuristic mojibake;
  private final Map<Integer, Integer>[] codePages;
  private final boolean[] restoresByteA0;
  private final boolean[] sloppy;
  private final CharMap c1Fixes;
  private final Pattern aGraveWord;
  private final Pattern spacedUtf8;
  private final Pattern lossyUtf8;
  private final Pattern utf8Variants;
  private final CodePointSet strictContinuation;
  private final CodePointSet continuation;
  private final CodePointSet firstOf2;
  private final CodePointSet firstOf3;
  private final CodePointSet firstOf4;
  // lowercasing
  private final CharMap lowercase;
  private final int[] asciiLowercase = new int[128];
  private final CodePointSet cased;
  private final CodePointSet caseIgnorable;
  /**
   * Test hooks, the units of the work that long inputs once made slow (ClipTokenizerTest bounds them by the
   * input's length instead of timing the tokenizer): input lines fixed so far ({@link #cleanLines} stops at the
   * line its consumer needs last), and characters the entity pattern has searched (up to each match's end) in
   * the repeated unescaping of plain lines ({@link #unescapePlain}: near the previous pass's replacements, not
   * the whole line once per nesting level). Each is added once per call.
   */
  final LongAdder linesFixed = new LongAdder();
  final LongAdder entitySearchChars = new LongAdder();

  /** Reads text_cleaning.json (UTF-8). Malformed tables are an IOException naming the table. */
  public static TextCleaner load(InputStream textCleaningJson) throws IOException {
    return new TextCleaner(Tables.parse(textCleaningJson, "text_cleaning.json"));
  }

  TextCleaner(Tables tables) throws IOException {
    try {
      whitespace = tables.codePoints("whitespace");
      Tables ftfy = tables.section("ftfy");
      Pattern plainLine = ftfy.pattern("plain_line", 0);
      for (char c = 0; c < 128; c++) {
        // The pattern is one character class repeated: a character is plain if it matches alone.
        plainAscii[c] = plainLine.matcher(String.valueOf(c)).matches();
      }
      ftfyEntity = ftfy.pattern("entity", 0);
      Matcher longest = ftfyEntity.matcher("&#" + "0".repeat(MAX_ENTITY_LENGTH) + ";");
      if (longest.lookingAt() && longest.end() >= MAX_ENTITY_LENGTH) {
        throw new IllegalArgumentException(ftfy.file() + " entity: matches more than " + MAX_ENTITY_LENGTH
            + " characters");
      }
      extraEntities = ftfy.strings("extra_entities");
      characterFixes = new CharMap(ftfy.charMap("character_fixes"));
      lateCharacterFixes = new CharMap(ftfy.charMap("late_character_fixes"));
      ansiEscape = ftfy.pattern("ansi_escape", 0);
      nfc = new Nfc(tables.section("nfc"));

      Tables html = tables.section("html");
      charref = html.pattern("charref", 0);
      html5 = html.strings("entities");
      invalidCharrefs = new HashMap<>();
      for (Map.Entry<String, String> entry : html.strings("invalid_charrefs").entrySet()) {
        try {
          invalidCharrefs.put(Integer.parseInt(entry.getKey()), entry.getValue());
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException(html.file() + " invalid_charrefs: '" + entry.getKey()
              + "' is not a number");
        }
      }
      invalidCodepoints = html.codePoints("invalid_codepoints");

      Tables moji = tables.section("mojibake");
      maxRunDepth = (int) moji.number("max_run_depth");
      mojibake = new MojibakeHeuristic(moji);
      int pages = moji.list("encodings").size();
      @SuppressWarnings("unchecked")
      Map<Integer, Integer>[] maps = new Map[pages];
      codePages = maps;
      restoresByteA0 = new boolean[pages];
      sloppy = new boolean[pages];
      for (int i = 0; i < pages; i++) {
        Tables page = moji.item("encodings", i);
        int[] chars = page.string("chars").codePoints().toArray();
        codePages[i] = new HashMap<>();
        for (int b = 0; b < chars.length; b++) {
          codePages[i].put(chars[b], b);
        }
        if (chars.length != 256 || codePages[i].size() != 256) {
          throw new IllegalArgumentException(page.file() + ": chars is not 256 distinct characters");
        }
        restoresByteA0[i] = page.bool("restore_byte_a0");
        sloppy[i] = page.bool("sloppy");
      }
      c1Fixes = new CharMap(moji.charMap("c1_fixes"));
      aGraveWord = moji.pattern("a_grave_word", 0);
      spacedUtf8 = moji.pattern("spaced_utf8", 0);
      lossyUtf8 = moji.pattern("lossy_utf8", 0);
      utf8Variants = moji.pattern("utf8_variants", 0);
      Tables clues = moji.section("utf8_clues");
      strictContinuation = clues.codePoints("continuation_strict");
      continuation = clues.codePoints("continuation");
      firstOf2 = clues.codePoints("first_of_2");
      firstOf3 = clues.codePoints("first_of_3");
      firstOf4 = clues.codePoints("first_of_4");

      Tables lower = tables.section("lowercase");
      lowercase = new CharMap(lower.charMap("map"));
      for (char c = 0; c < 128; c++) {
        // -1 marks a character the fast path leaves to the general one (NUL, which the graph deletes).
        String mapped = lowercase.map.get((int) c);
        asciiLowercase[c] = mapped == null ? c : mapped.length() == 1 && mapped.charAt(0) < 128 ? mapped.charAt(0) : -1;
      }
      cased = lower.codePoints("cased");
      caseIgnorable = lower.codePoints("case_ignorable");
    } catch (IllegalArgumentException | ClassCastException | IndexOutOfBoundsException e) {
      throw new IOException(e.getMessage(), e);
    }
  }

  /** The text as the graph's cleaning leaves it (the input of pre-tokenisation). */
  public String clean(String text) {
    StringBuilder cleaned = new StringBuilder(text.length());
    cleanLines(text, line -> {
      cleaned.append(line);
      return true;
    });
    return collapseWhitespace(cleaned);
  }

  /**
   * The cleaning of {@code text} one line at a time, in order: each piece is the cleaned text of one input line
   * (with its line break; several lines where the graph loses a line break), before whitespace is collapsed.
   * The pieces are independent after ftfy's per-line fixes (no HTML reference, lowercasing context or word
   * crosses a line break), so a consumer that needs only the start of the text can stop early. Lone surrogates
   * become U+FFFD first, as the graph's UTF-8 input would.
   */
  public void cleanLines(String text, LineSink sink) {
    text = replaceLoneSurrogates(text);
    boolean unescape = true;
    StringBuilder pending = new StringBuilder();
    int start = 0;
    while (start < text.length()) {
      int newline = text.indexOf('\n', start);
      int end = newline < 0 ? text.length() : newline + 1;
      String line = text.substring(start, end);
      start = end;
      // ftfy skips HTML unescaping from the first line that contains "<" on.
      if (line.indexOf('<') >= 0) {
        unescape = false;
      }
      pending.append(fixLine(line, unescape));
      linesFixed.increment();
      // A line the graph cut at a NUL has lost its "\n": it runs on into the next one.
      if (start < text.length() && (pending.length() == 0 || pending.charAt(pending.length() - 1) != '\n')) {
        continue;
      }
      String fixed = pending.toString();
      pending.setLength(0);
      if (!sink.accept(lowercase(htmlUnescape(htmlUnescape(fixed))))) {
        return;
      }
    }
  }

  /**
   * The text up to its first NUL. tensorflow-text's regex_split, which the graph uses to replace matches (HTML
   * references, bytes A0, runs of mojibake), reads its input as a C string and drops everything from a NUL on;
   * the graph's tf.strings.lower does the same. ftfy removes NULs, so this only matters before it has.
   */
  private static String cutAtNul(String text) {
    int nul = text.indexOf('\0');
    return nul < 0 ? text : text.substring(0, nul);
  }

  // --- ftfy.fix_text (TextCleaner._fix_text) ---------------------------------------------------------------

  /** One line with its "\n": every fix repeated until the line stops changing. */
  String fixLine(String original, boolean unescape) {
    if (isPlain(original)) {
      return original;
    }
    String parts = original;
    boolean noRepair = false;
    while (true) {
      if (unescape && isPlainOrAmpersand(parts)) {
        parts = unescapePlain(parts);
      }
      String before = parts;
      String text = unescape ? ftfyUnescape(before) : before;
      Fixed repaired = noRepair ? new Fixed(text, false) : fixEncoding(text, 0);
      String after = ftfyFixes(repaired.text);
      // A line whose repair the graph cannot reproduce starts again from the original, without mojibake repair.
      if (repaired.unsure) {
        after = original;
        noRepair = true;
      }
      parts = after;
      if (!repaired.unsure && before.equals(after)) {
        return parts;
      }
    }
  }

  private boolean isPlainOrAmpersand(String line) {
    for (int i = 0; i < line.length(); i++) {
      char c = line.charAt(i);
      if (c != '&' && (c >= 128 || !plainAscii[c])) {
        return false;
      }
    }
    return true;
  }

  /**
   * The loop above on a line of plain ASCII and "&", where the mojibake repair and the other fixes change
   * nothing: unescaping repeated while its result stays such a line and changes. Returns the last such value
   * (the loop goes on from there). Each pass after the first looks only near what the pass before replaced
   * (a match elsewhere would have been found, and replaced, in that pass already): HTML entities nested
   * thousands of levels deep (&amp;amp;amp;...) cost a copy of the line per level, not a regex search of it.
   */
  private String unescapePlain(String line) {
    String current = line;
    List<int[]> changed = List.of(new int[] {0, line.length()});
    int margin = 0;
    long searched = 0;
    while (true) {
      StringBuilder out = new StringBuilder(current.length());
      List<int[]> replaced = new ArrayList<>();
      Matcher m = ftfyEntity.matcher(current);
      int copied = 0;
      boolean plain = true;
      for (int[] window : windows(changed, margin, current.length())) {
        int from = Math.max(window[0], copied);
        while (from < window[1]) {
          // A match starting in the window ends within MAX_ENTITY_LENGTH of it: search no further.
          int regionEnd = Math.min(current.length(), window[1] + MAX_ENTITY_LENGTH);
          m.region(from, regionEnd);
          boolean found = m.find();
          searched += (found ? m.end() : regionEnd) - from; // what find() had to look at
          if (!found || m.start() >= window[1]) {
            break;
          }
          String entity = m.group();
          String replacement = entityReplacement(entity);
          out.append(current, copied, m.start());
          if (!replacement.equals(entity)) {
            replaced.add(new int[] {out.length(), out.length() + replacement.length()});
            plain &= isPlainOrAmpersand(replacement);
          }
          out.append(replacement);
          copied = m.end();
          from = m.end();
        }
      }
      if (replaced.isEmpty() || !plain) {
        entitySearchChars.add(searched);
        return current;
      }
      current = out.append(current, copied, current.length()).toString();
      changed = replaced;
      margin = MAX_ENTITY_LENGTH;
    }
  }

  /** Each interval widened by {@code margin} on both sides, clipped to [0, length), overlapping ones merged. */
  private static List<int[]> windows(List<int[]> intervals, int margin, int length) {
    List<int[]> windows = new ArrayList<>();
    for (int[] interval : intervals) {
      int start = Math.max(0, interval[0] - margin);
      int end = Math.min(length, interval[1] + margin);
      int[] previous = windows.isEmpty() ? null : windows.get(windows.size() - 1);
      if (previous != null && start <= previous[1]) {
        previous[1] = Math.max(previous[1], end);
      } else {
        windows.add(new int[] {start, end});
      }
    }
    return windows;
  }

  private boolean isPlain(String line) {
    for (int i = 0; i < line.length(); i++) {
      char c = line.charAt(i);
      if (c >= 128 || !plainAscii[c]) {
        return false;
      }
    }
    return true;
  }

  /** ftfy's unescape_html: its entity table; "&#...;" only when html.unescape leaves no ";". */
  String ftfyUnescape(String text) {
    return replaceReferences(text, ftfyEntity, this::entityReplacement);
  }

  /**
   * Each match of {@code pattern} (HTML references, all starting with "&") replaced by {@code replace(match)},
   * leftmost first as re.sub; the text is cut at a NUL first, as the graph's regex_split does.
   */
  private static String replaceReferences(String text, Pattern pattern, UnaryOperator<String> replace) {
    if (text.indexOf('&') < 0) {
      return text;
    }
    text = cutAtNul(text);
    Matcher m = pattern.matcher(text);
    StringBuilder out = null;
    int last = 0;
    while (m.find()) {
      String replacement = replace.apply(m.group());
      if (out == null) {
        out = new StringBuilder(text.length());
      }
      out.append(text, last, m.start()).append(replacement);
      last = m.end();
    }
    return out == null ? text : out.append(text, last, text.length()).toString();
  }

  private String entityReplacement(String entity) {
    String replacement = html5.get(entity.substring(1));
    if (replacement == null) {
      replacement = extraEntities.get(entity);
    }
    if (replacement == null && entity.startsWith("&#")) {
      String numeric = htmlUnescape(entity);
      if (numeric.indexOf(';') < 0) {
        replacement = numeric;
      }
    }
    return replacement == null ? entity : replacement;
  }

  /** ftfy's fixes after unescape_html and fix_encoding, in its order (TextCleaner._ftfy_fixes). */
  private String ftfyFixes(String text) {
    text = characterFixes.translate(text);
    if (text.indexOf('\r') >= 0) {
      text = crLf.matcher(text).replaceAll("\n");
    }
    if (text.indexOf('\u001b') >= 0) {
      text = ansiEscape.matcher(text).replaceAll("");
    }
    text = lateCharacterFixes.translate(text);
    return nfc.normalize(text);
  }

  // --- ftfy.fix_encoding (TextCleaner._fix_encoding and the methods it calls) ------------------------------

  /** A repaired line, or the line as given and unsure where the graph cannot reproduce ftfy's repair. */
  private static final class Fixed {
    final String text;
    final boolean unsure;

    Fixed(String text, boolean unsure) {
      this.text = text;
      this.unsure = unsure;
    }
  }

  /** One repair step repeated until the line stops changing; unsure lines come back as given. */
  Fixed fixEncoding(String line, int depth) {
    String current = line;
    while (true) {
      Fixed step = fixEncodingStep(current, depth);
      if (step.unsure) {
        return new Fixed(line, true);
      }
      if (step.text.equals(current)) {
        return step;
      }
      current = step.text;
    }
  }

  private Fixed fixEncodingStep(String line, int depth) {
    if (isAscii(line) || !mojibake.isBad(line)) {
      return new Fixed(line, false);
    }
    for (int page = 0; page < codePages.length; page++) {
      String byteChars = encode(line, page);
      if (byteChars == null) {
        continue;
      }
      if (restoresByteA0[page]) {
        byteChars = restoreByteA0(byteChars);
      }
      if (sloppy[page]) {
        byteChars = lossyUtf8.matcher(byteChars).replaceAll("\u00ef\u00bf\u00bd");
      }
      boolean variant = utf8Variants.matcher(byteChars).find();
      String decoded = decodeUtf8(byteChars);
      // ftfy stops at the first encodable page whose bytes decode (or would need utf-8-variants to).
      if (variant) {
        return new Fixed(line, true);
      }
      if (decoded != null) {
        return new Fixed(decoded, false);
      }
    }
    Fixed runs = decodeInconsistentUtf8(line, depth);
    if (runs.unsure) {
      return new Fixed(line, true);
    }
    if (!runs.text.equals(line)) {
      return runs;
    }
    // Latin-1 read as Windows-1252: the C1 controls it defines.
    return new Fixed(c1Fixes.translate(line), false);
  }

  private static boolean isAscii(String text) {
    for (int i = 0; i < text.length(); i++) {
      if (text.charAt(i) >= 128) {
        return false;
      }
    }
    return true;
  }

  /** The line in code page {@code page} as characters U+0000..U+00FF standing for bytes; null if it cannot be. */
  private String encode(String line, int page) {
    Map<Integer, Integer> bytes = codePages[page];
    StringBuilder out = new StringBuilder(line.length());
    for (int i = 0; i < line.length(); ) {
      int c = line.codePointAt(i);
      i += Character.charCount(c);
      Integer b = bytes.get(c);
      if (b == null) {
        return null;
      }
      out.append((char) (int) b);
    }
    return out.toString();
  }

  /** ftfy's restore_byte_a0 on text whose characters stand for bytes. */
  private String restoreByteA0(String byteChars) {
    if (!spacedUtf8.matcher(byteChars).find()) {
      return byteChars;
    }
    String text = cutAtNul(aGraveWord.matcher(byteChars).replaceAll("\u00c3\u00a0 "));
    Matcher m = spacedUtf8.matcher(text);
    StringBuilder out = new StringBuilder(text.length());
    int last = 0;
    while (m.find()) {
      out.append(text, last, m.start()).append(m.group().replace(' ', '\u00a0'));
      last = m.end();
    }
    return out.append(text, last, text.length()).toString();
  }

  /** The bytes (characters U+0000..U+00FF) decoded as UTF-8, or null where they are not UTF-8. */
  private static String decodeUtf8(String byteChars) {
    int n = byteChars.length();
    byte[] bytes = new byte[n];
    for (int i = 0; i < n; i++) {
      bytes[i] = (byte) byteChars.charAt(i);
    }
    for (int i = 0; i < n; ) {
      int b = bytes[i] & 0xFF;
      int length;
      int low = 0x80;
      int high = 0xBF;
      if (b < 0x80) {
        i++;
        continue;
      } else if (b >= 0xC2 && b <= 0xDF) {
        length = 2;
      } else if (b >= 0xE0 && b <= 0xEF) {
        length = 3;
        low = b == 0xE0 ? 0xA0 : 0x80;
        high = b == 0xED ? 0x9F : 0xBF;
      } else if (b >= 0xF0 && b <= 0xF4) {
        length = 4;
        low = b == 0xF0 ? 0x90 : 0x80;
        high = b == 0xF4 ? 0x8F : 0xBF;
      } else {
        return null;
      }
      if (i + length > n) {
        return null;
      }
      for (int k = 1; k < length; k++) {
        int next = bytes[i + k] & 0xFF;
        if (next < (k == 1 ? low : 0x80) || next > (k == 1 ? high : 0xBF)) {
          return null;
        }
      }
      i += length;
    }
    return new String(bytes, StandardCharsets.UTF_8);
  }

  /**
   * ftfy's decode_inconsistent_utf8: each run of UTF-8-like characters shorter than the line that looks like
   * mojibake is repaired on its own. Runs nested deeper than max_run_depth are not reproduced: unsure.
   */
  private Fixed decodeInconsistentUtf8(String line, int depth) {
    String text = cutAtNul("\u0001" + line);
    int[] chars = text.codePoints().toArray();
    int lineLength = line.codePointCount(0, line.length());
    StringBuilder out = new StringBuilder(text.length());
    boolean unsure = false;
    int copied = 0;
    for (int i = 0; i + 1 < chars.length; i++) {
      // The run must follow a character that is not a strict continuation (ftfy's look-behind).
      if (strictContinuation.contains(chars[i])) {
        continue;
      }
      int end = utf8RunEnd(chars, i + 1);
      if (end == i + 1) {
        continue;
      }
      String run = new String(chars, i + 1, end - i - 1);
      if (end - i - 1 < lineLength && mojibake.isBad(run)) {
        if (depth >= maxRunDepth) {
          return new Fixed(line, true);
        }
        Fixed repaired = fixEncoding(run, depth + 1);
        unsure |= repaired.unsure;
        appendCodePoints(out, chars, copied, i + 1).append(repaired.text);
        copied = end;
      }
      i = end - 1;
    }
    if (depth >= maxRunDepth) {
      return new Fixed(line, false);
    }
    appendCodePoints(out, chars, copied, chars.length);
    return new Fixed(out.substring(1), unsure);
  }

  /**
   * Where the run of UTF-8-like characters starting at {@code start} ends (start itself if there is none), as
   * the graph's pattern {@code (?:[first_of_2][cont]|[first_of_3][cont]{2}|[first_of_4][cont]{3})+} matches
   * greedily, alternatives in order. Written out because java.util.regex recurses once per repetition.
   */
  private int utf8RunEnd(int[] chars, int start) {
    int i = start;
    while (true) {
      int length = firstOf2.contains(at(chars, i)) && continues(chars, i + 1, 1) ? 2
          : firstOf3.contains(at(chars, i)) && continues(chars, i + 1, 2) ? 3
          : firstOf4.contains(at(chars, i)) && continues(chars, i + 1, 3) ? 4 : 0;
      if (length == 0) {
        return i;
      }
      i += length;
    }
  }

  private boolean continues(int[] chars, int from, int count) {
    for (int k = from; k < from + count; k++) {
      if (!continuation.contains(at(chars, k))) {
        return false;
      }
    }
    return true;
  }

  private static StringBuilder appendCodePoints(StringBuilder out, int[] chars, int from, int to) {
    for (int k = from; k < to; k++) {
      out.appendCodePoint(chars[k]);
    }
    return out;
  }

  private static int at(int[] chars, int i) {
    return i < chars.length ? chars[i] : -1;
  }

  // --- html.unescape (TextCleaner._html_unescape) -----------------------------------------------------------

  /** Python's html.unescape. */
  String htmlUnescape(String text) {
    return replaceReferences(text, charref, reference -> replaceCharref(reference.substring(1)));
  }

  private String replaceCharref(String s) {
    if (s.startsWith("#")) {
      return numericCharref(s);
    }
    String named = html5.get(s);
    if (named != null) {
      return named;
    }
    // The longest name valid without ";" that prefixes the reference (those names are ASCII).
    for (int x = s.length() - 1; x > 1; x--) {
      String prefix = html5.get(s.substring(0, x));
      if (prefix != null) {
        return prefix + s.substring(x);
      }
    }
    return "&" + s;
  }

  private String numericCharref(String s) {
    boolean hex = s.length() > 1 && (s.charAt(1) == 'x' || s.charAt(1) == 'X');
    String digits = s.substring(hex ? 2 : 1);
    if (digits.endsWith(";")) {
      digits = digits.substring(0, digits.length() - 1);
    }
    int zeros = 0;
    while (zeros < digits.length() - 1 && digits.charAt(zeros) == '0') {
      zeros++;
    }
    digits = digits.substring(zeros);
    // Longer numbers are beyond U+10FFFF whatever their digits.
    int number = digits.length() > (hex ? 6 : 7) ? 0x110000 : Integer.parseInt(digits, hex ? 16 : 10);
    String special = invalidCharrefs.get(number);
    if (special != null) {
      return special;
    }
    if ((number >= 0xD800 && number <= 0xDFFF) || number > 0x10FFFF) {
      return REPLACEMENT;
    }
    if (invalidCodepoints.contains(number)) {
      return "";
    }
    return new String(Character.toChars(number));
  }

  // --- whitespace and lowercasing (TextCleaner.clean) -----------------------------------------------------------

  /** Runs of whitespace (str.isspace) to one space, without a leading or trailing one. */
  String collapseWhitespace(CharSequence text) {
    StringBuilder out = new StringBuilder(text.length());
    boolean space = false;
    for (int i = 0; i < text.length(); ) {
      int c = Character.codePointAt(text, i);
      i += Character.charCount(c);
      if (whitespace.contains(c)) {
        space = true;
        continue;
      }
      if (space && out.length() > 0) {
        out.append(' ');
      }
      space = false;
      out.appendCodePoint(c);
    }
    return out.toString();
  }

  /** str.lower as the graph does it: its per-character map, and the final form of capital sigma in context. */
  String lowercase(String text) {
    text = cutAtNul(text);
    int i = 0;
    char[] ascii = null;
    for (; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c >= 128 || asciiLowercase[c] < 0) {
        break;
      }
      if (asciiLowercase[c] != c) {
        if (ascii == null) {
          ascii = text.toCharArray();
        }
        ascii[i] = (char) asciiLowercase[c];
      }
    }
    if (i == text.length()) {
      return ascii == null ? text : new String(ascii);
    }
    StringBuilder out = new StringBuilder(text.length());
    out.append(ascii == null ? text : new String(ascii), 0, i);
    while (i < text.length()) {
      int c = text.codePointAt(i);
      if (c == 0x3A3 && isFinalSigma(text, i)) {
        out.append('\u03c2');
      } else {
        String mapped = lowercase.map.get(c);
        if (mapped == null) {
          out.appendCodePoint(c);
        } else {
          out.append(mapped);
        }
      }
      i += Character.charCount(c);
    }
    return out.toString();
  }

  /** Unicode's Final_Sigma: a cased letter before (case-ignorable ones skipped), none after. */
  private boolean isFinalSigma(String text, int at) {
    int i = at;
    int before = -1;
    while (i > 0) {
      int c = text.codePointBefore(i);
      i -= Character.charCount(c);
      if (!caseIgnorable.contains(c)) {
        before = c;
        break;
      }
    }
    if (before < 0 || !cased.contains(before)) {
      return false;
    }
    for (i = at + 1; i < text.length(); ) {
      int c = text.codePointAt(i);
      i += Character.charCount(c);
      if (!caseIgnorable.contains(c)) {
        return !cased.contains(c);
      }
    }
    return true;
  }

  private static String replaceLoneSurrogates(String text) {
    StringBuilder out = null;
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      boolean lone = Character.isHighSurrogate(c)
          ? i + 1 >= text.length() || !Character.isLowSurrogate(text.charAt(i + 1))
          : Character.isLowSurrogate(c) && (i == 0 || !Character.isHighSurrogate(text.charAt(i - 1)));
      if (lone && out == null) {
        out = new StringBuilder(text.length()).append(text, 0, i);
      }
      if (out != null) {
        out.append(lone ? '\ufffd' : c);
      }
    }
    return out == null ? text : out.toString();
  }

  /** A code point -> string map applied to every character, skipping texts with nothing to map. */
  private static final class CharMap {
    final Map<Integer, String> map;
    private final boolean[] asciiMapped = new boolean[128];
    private final int minimum;

    CharMap(Map<Integer, String> map) {
      this.map = map;
      int min = Integer.MAX_VALUE;
      for (int c : map.keySet()) {
        min = Math.min(min, c);
        if (c < 128) {
          asciiMapped[c] = true;
        }
      }
      minimum = min;
    }

    String translate(String text) {
      int i = 0;
      for (; i < text.length(); i++) {
        char c = text.charAt(i);
        if (c < 128 ? asciiMapped[c] : c >= minimum && (Character.isSurrogate(c) || map.containsKey((int) c))) {
          break;
        }
      }
      if (i == text.length()) {
        return text;
      }
      StringBuilder out = new StringBuilder(text.length()).append(text, 0, i);
      while (i < text.length()) {
        int c = text.codePointAt(i);
        String mapped = map.get(c);
        if (mapped == null) {
          out.appendCodePoint(c);
        } else {
          out.append(mapped);
        }
        i += Character.charCount(c);
      }
      return out.toString();
    }
  }
}

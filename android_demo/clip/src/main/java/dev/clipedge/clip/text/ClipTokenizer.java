package dev.clipedge.clip.text;

import dev.clipedge.clip.Contract;
import dev.clipedge.clip.Json;
import dev.clipedge.clip.Manifest;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * CLIP's byte-level BPE tokenizer, token for token equal to the exported SavedModel's {@code tokenize}
 * signature (clip_edge/tokenizer.py): {@link TextCleaner} (clip_edge/text_cleaning.py), CLIP's pre-tokenisation
 * (special-token strings and contractions case-insensitively, letter runs, single digits, runs of other non-space
 * characters), UTF-8 bytes to GPT-2's byte symbols, BPE by merge rank, start and end tokens, truncation keeping the
 * end token last.
 *
 * <p>Thread-safe: the tables are immutable and the word cache is a concurrent map, cleared when it reaches
 * {@link #CACHE_LIMIT} words so that a stream of distinct words cannot grow it without bound.
 */
public final class ClipTokenizer {
  /** Token ids and padding mask, both {@code contextLength} long; ids padded with 0, mask 1 for real tokens. */
  public record Tokens(int[] ids, int[] paddingMask) {}

  static final String END_OF_WORD = "</w>";
  /** Words cached before the cache is cleared. */
  static final int CACHE_LIMIT = 20_000;
  /** Longer words are not cached (they are rare, and each would hold much memory). */
  private static final int CACHE_MAX_WORD = 64;
  /** Words of more symbols use the heap-based BPE (n log n) instead of OpenAI's loop (quadratic). */
  private static final int HEAP_BPE_MIN = 48;
  private static final int MAX_FILE_BYTES = 64 << 20;
  private static final Pattern JSON_OFFSET = Pattern.compile("invalid JSON at offset (\\d+)");

  private final int contextLength;
  private final int startTokenId;
  private final int endTokenId;
  private final TextCleaner cleaner;
  private final int[] byteIds = new int[256];
  private final int[] finalByteIds = new int[256];
  private final long idSpace;
  private final LongIntMap mergeRanks;
  private final int[] mergeResults;
  /** Whether every merge's symbols are made only by merges of lower rank, which the heap-based BPE needs. */
  private final boolean ranksConsistent;
  // Pre-tokenisation.
  private final Map<String, Integer> specialTokens;
  private final List<String> literals;
  private final Map<Character, String> caseVariants;
  private final CodePointSet whitespace;
  private final CodePointSet letters;
  private final CodePointSet numbers;
  private final CodePointSet unmatched;
  private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();
  /**
   * Test hook: adjacent symbol pairs whose merge rank the BPE has looked up so far, the unit of its work. OpenAI's
   * loop looks up every pair of the word once per merge round to find the lowest rank (counted: n - 1 per round,
   * quadratic on a long word); the heap looks up each initial pair, each popped pair and the two new neighbours of
   * each merge (at most 6 (n - 1)). Added once per word, so it costs nothing measurable; ClipTokenizerTest bounds
   * it by the input's length instead of timing the tokenizer.
   */
  final LongAdder pairLookups = new LongAdder();

  /**
   * The export's tokenizer: its vocab.json, merges.txt and text_cleaning.json where the manifest's contract puts
   * them, each checked against the manifest first, with the contract's special tokens.
   */
  public static ClipTokenizer fromExport(Manifest manifest, int contextLength) throws IOException {
    List<Path> files = manifest.verifiedTokenizerFiles();
    Path vocab = files.get(0);
    Path merges = files.get(1);
    Path cleaning = files.get(2);
    try (InputStream v = Files.newInputStream(vocab); InputStream m = Files.newInputStream(merges);
         InputStream c = Files.newInputStream(cleaning)) {
      return load(v, vocab.toString(), m, merges.toString(), c, cleaning.toString(), contextLength,
          manifest.contract().text());
    }
  }

  /**
   * From streams (Android assets): vocab.json, merges.txt, text_cleaning.json, with the special-token spellings
   * of exports without a contract ({@link Contract#PRE_CONTRACT}).
   */
  public static ClipTokenizer load(InputStream vocabJson, InputStream mergesTxt, InputStream cleaningTables,
      int contextLength) throws IOException {
    return load(vocabJson, "vocab.json", mergesTxt, "merges.txt", cleaningTables, "text_cleaning.json",
        contextLength, Contract.PRE_CONTRACT.text());
  }

  static ClipTokenizer load(InputStream vocabJson, String vocabName, InputStream mergesTxt, String mergesName,
      InputStream cleaningTables, String cleaningName, int contextLength, Contract.Text special) throws IOException {
    if (contextLength < 2) {
      throw new IllegalArgumentException("contextLength must be >= 2 (room for start and end), got "
          + contextLength);
    }
    Map<String, Integer> vocab = readVocabulary(Tables.readUtf8(vocabJson, MAX_FILE_BYTES, vocabName), vocabName);
    List<int[]> merges = readMerges(Tables.readUtf8(mergesTxt, MAX_FILE_BYTES, mergesName), mergesName, vocab);
    Tables tables = Tables.parse(cleaningTables, cleaningName);
    return new ClipTokenizer(vocab, vocabName, merges, tables, contextLength, special);
  }

  private ClipTokenizer(Map<String, Integer> vocab, String vocabName, List<int[]> merges, Tables tables,
      int contextLength, Contract.Text special) throws IOException {
    this.contextLength = contextLength;
    this.cleaner = new TextCleaner(tables);
    this.startTokenId = specialId(vocab, vocabName, special.start(), "start");
    this.endTokenId = specialId(vocab, vocabName, special.end(), "end");
    int maxId = 0;
    for (int id : vocab.values()) {
      maxId = Math.max(maxId, id);
    }
    idSpace = maxId + 1L;
    String[] byteChars = byteToUnicode();
    List<String> missing = new ArrayList<>();
    for (int b = 0; b < 256; b++) {
      Integer id = vocab.get(byteChars[b]);
      Integer finalId = vocab.get(byteChars[b] + END_OF_WORD);
      if (id == null || finalId == null) {
        missing.add(byteChars[b] + (id == null ? "" : END_OF_WORD));
        continue;
      }
      byteIds[b] = id;
      finalByteIds[b] = finalId;
    }
    if (!missing.isEmpty()) {
      throw new IOException("vocab.json lacks the byte symbols " + missing.subList(0, Math.min(5, missing.size()))
          + " (" + missing.size() + " in all)");
    }
    mergeRanks = new LongIntMap(merges.size());
    mergeResults = new int[merges.size()];
    int[] madeAt = new int[(int) idSpace];
    Arrays.fill(madeAt, -1);
    boolean consistent = true;
    for (int rank = 0; rank < merges.size(); rank++) {
      int[] merge = merges.get(rank);
      mergeRanks.put(merge[0] * idSpace + merge[1], rank);
      mergeResults[rank] = merge[2];
    }
    for (int rank = 0; rank < merges.size(); rank++) {
      madeAt[merges.get(rank)[2]] = Math.max(madeAt[merges.get(rank)[2]], rank);
    }
    for (int rank = 0; rank < merges.size() && consistent; rank++) {
      int[] merge = merges.get(rank);
      consistent = madeAt[merge[0]] < rank && madeAt[merge[1]] < rank;
    }
    ranksConsistent = consistent;

    try {
      Tables pre = tables.section("pre_tokenization");
      specialTokens = new HashMap<>();
      literals = new ArrayList<>();
      for (Map.Entry<String, Long> entry : pre.ids("special_tokens").entrySet()) {
        long id = entry.getValue();
        if (id < 0 || id >= idSpace) {
          throw new IllegalArgumentException(pre.file() + " special_tokens: id of '" + entry.getKey()
              + "' is not in the vocabulary");
        }
        specialTokens.put(entry.getKey(), (int) id);
        literals.add(entry.getKey());
      }
      for (Object contraction : pre.list("contractions")) {
        literals.add((String) contraction);
      }
      caseVariants = new HashMap<>();
      for (Map.Entry<String, String> entry : pre.strings("case_variants").entrySet()) {
        if (entry.getKey().length() != 1) {
          throw new IllegalArgumentException(pre.file() + " case_variants: key '" + entry.getKey()
              + "' is not one character");
        }
        caseVariants.put(entry.getKey().charAt(0), entry.getValue());
      }
      whitespace = tables.codePoints("whitespace");
      letters = pre.codePoints("letters");
      numbers = pre.codePoints("numbers");
      unmatched = pre.codePoints("unmatched");
    } catch (IllegalArgumentException | ClassCastException e) {
      throw new IOException(e.getMessage(), e);
    }
  }

  public int contextLength() {
    return contextLength;
  }

  public int startTokenId() {
    return startTokenId;
  }

  public int endTokenId() {
    return endTokenId;
  }

  /** The cleaner this tokenizer uses. */
  public TextCleaner cleaner() {
    return cleaner;
  }

  /**
   * {@code [start, tokens..., end]}, at most {@code contextLength} long: the first {@code contextLength - 1}
   * tokens (start included) and the end token, as OpenAI's {@code truncate=True}. No padding.
   *
   * <p>Work is bounded by what the result can depend on: lines are cleaned and split into words one at a time,
   * and nothing after the line in which the kept tokens are complete is looked at (ftfy fixes each line on its
   * own, and no HTML reference, lowercasing context or word crosses a line break). A single word is tokenized
   * whole, with an n log n BPE when long.
   */
  public int[] encode(String text) {
    int keep = contextLength - 2;
    IntList ids = new IntList(contextLength);
    ids.add(startTokenId);
    cleaner.cleanLines(text, line -> {
      words(line, word -> {
        if (ids.size() - 1 < keep) {
          ids.addAll(tokens(word));
        }
        return ids.size() - 1 < keep;
      });
      return ids.size() - 1 < keep;
    });
    int length = Math.min(ids.size(), contextLength - 1);
    int[] out = Arrays.copyOf(ids.array(), length + 1);
    out[length] = endTokenId;
    return out;
  }

  /** {@link #encode} padded with 0 to {@code contextLength}, with its padding mask. */
  public Tokens tokenize(String text) {
    int[] encoded = encode(text);
    int[] ids = Arrays.copyOf(encoded, contextLength);
    int[] mask = new int[contextLength];
    Arrays.fill(mask, 0, encoded.length, 1);
    return new Tokens(ids, mask);
  }

  // --- pre-tokenisation ---------------------------------------------------------------------------------------

  interface WordSink {
    boolean accept(String word);
  }

  /**
   * CLIP's pattern, as re.findall on cleaned text: at each position the first alternative that matches, in the
   * pattern's order (special-token strings and contractions, case-insensitively; a run of letters; one number
   * character; a run of characters that are none of whitespace, letter, number). Characters no alternative
   * matches (whitespace, U+0345 which the reference's IGNORECASE pattern skips) are skipped.
   */
  void words(String text, WordSink sink) {
    int n = text.length();
    int i = 0;
    while (i < n) {
      int c = text.codePointAt(i);
      int width = Character.charCount(c);
      if (whitespace.contains(c) || unmatched.contains(c)) {
        i += width;
        continue;
      }
      int end = -1;
      if (c == '<' || c == '\'') {
        for (String literal : literals) {
          if (matchesIgnoringCase(text, i, literal)) {
            end = i + literal.length();
            break;
          }
        }
      }
      if (end < 0) {
        end = i + width;
        if (letters.contains(c)) {
          while (end < n && letters.contains(text.codePointAt(end))) {
            end += Character.charCount(text.codePointAt(end));
          }
        } else if (!numbers.contains(c)) {
          while (end < n) {
            int d = text.codePointAt(end);
            if (whitespace.contains(d) || letters.contains(d) || numbers.contains(d) || unmatched.contains(d)) {
              break;
            }
            end += Character.charCount(d);
          }
        }
      }
      if (!sink.accept(text.substring(i, end))) {
        return;
      }
      i = end;
    }
  }

  /** Literals are ASCII; RE2's case-insensitive match also accepts a letter's case variants (ſ for s). */
  private boolean matchesIgnoringCase(String text, int at, String literal) {
    if (at + literal.length() > text.length()) {
      return false;
    }
    for (int k = 0; k < literal.length(); k++) {
      char t = text.charAt(at + k);
      char p = literal.charAt(k);
      if (t != p) {
        String variants = caseVariants.get(p);
        if (variants == null || variants.indexOf(t) < 0) {
          return false;
        }
      }
    }
    return true;
  }

  // --- BPE ------------------------------------------------------------------------------------------------------

  /** The token ids of one word (special-token strings spelt exactly are their token). */
  int[] tokens(String word) {
    int[] cached = cache.get(word);
    if (cached != null) {
      return cached;
    }
    Integer special = specialTokens.get(word);
    int[] ids = special != null ? new int[] {special} : bpe(word.getBytes(StandardCharsets.UTF_8));
    if (word.length() <= CACHE_MAX_WORD) {
      if (cache.size() >= CACHE_LIMIT) {
        cache.clear();
      }
      cache.put(word, ids);
    }
    return ids;
  }

  private int[] bpe(byte[] bytes) {
    return bpe(bytes, bytes.length >= HEAP_BPE_MIN && ranksConsistent);
  }

  /** The BPE of a word's UTF-8 bytes, by the heap or by OpenAI's loop (package-private for tests). */
  int[] bpe(byte[] bytes, boolean heap) {
    int n = bytes.length;
    int[] symbols = new int[n];
    for (int i = 0; i < n; i++) {
      symbols[i] = i == n - 1 ? finalByteIds[bytes[i] & 0xFF] : byteIds[bytes[i] & 0xFF];
    }
    return heap ? heapBpe(symbols) : loopBpe(symbols);
  }

  int cacheSize() {
    return cache.size();
  }

  boolean ranksConsistent() {
    return ranksConsistent;
  }

  private int rank(int left, int right) {
    return mergeRanks.get(left * idSpace + right);
  }

  /** OpenAI's bpe(): repeatedly merge every occurrence, left to right, of the pair of lowest rank. */
  private int[] loopBpe(int[] symbols) {
    int n = symbols.length;
    long lookups = 0;
    while (n > 1) {
      int best = Integer.MAX_VALUE;
      lookups += n - 1;
      for (int i = 0; i + 1 < n; i++) {
        int rank = rank(symbols[i], symbols[i + 1]);
        if (rank >= 0 && rank < best) {
          best = rank;
        }
      }
      if (best == Integer.MAX_VALUE) {
        break;
      }
      int merged = mergeResults[best];
      int out = 0;
      for (int i = 0; i < n; i++) {
        if (i + 1 < n && rank(symbols[i], symbols[i + 1]) == best) {
          symbols[out++] = merged;
          i++;
        } else {
          symbols[out++] = symbols[i];
        }
      }
      n = out;
    }
    pairLookups.add(lookups);
    return Arrays.copyOf(symbols, n);
  }

  /**
   * The same merges in the same order for long words, in n log n: a heap of (rank, position) over a linked list
   * of symbols. Equal to the loop when merges are rank-consistent (a merge's result only takes part in merges of
   * higher rank), which the constructor checks: then all pairs of one rank are merged, left to right, before any
   * pair of a higher rank, and no pair of a lower rank can appear later.
   */
  private int[] heapBpe(int[] symbols) {
    int n = symbols.length;
    int[] next = new int[n];
    int[] previous = new int[n];
    boolean[] gone = new boolean[n];
    for (int i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      previous[i] = i - 1;
    }
    LongHeap heap = new LongHeap(n);
    long lookups = Math.max(0, n - 1);
    for (int i = 0; i + 1 < n; i++) {
      int rank = rank(symbols[i], symbols[i + 1]);
      if (rank >= 0) {
        heap.push(((long) rank << 32) | i);
      }
    }
    while (!heap.isEmpty()) {
      long entry = heap.pop();
      int rank = (int) (entry >>> 32);
      int left = (int) entry;
      int right = gone[left] ? -1 : next[left];
      if (right < 0) {
        continue;
      }
      lookups++;
      if (rank(symbols[left], symbols[right]) != rank) {
        continue;
      }
      symbols[left] = mergeResults[rank];
      gone[right] = true;
      next[left] = next[right];
      if (next[right] >= 0) {
        previous[next[right]] = left;
      }
      if (previous[left] >= 0) {
        lookups++;
        int r = rank(symbols[previous[left]], symbols[left]);
        if (r >= 0) {
          heap.push(((long) r << 32) | previous[left]);
        }
      }
      if (next[left] >= 0) {
        lookups++;
        int r = rank(symbols[left], symbols[next[left]]);
        if (r >= 0) {
          heap.push(((long) r << 32) | left);
        }
      }
    }
    pairLookups.add(lookups);
    IntList out = new IntList(16);
    for (int i = 0; i >= 0; i = next[i]) {
      out.add(symbols[i]);
    }
    return Arrays.copyOf(out.array(), out.size());
  }

  // --- files ------------------------------------------------------------------------------------------------------

  /** GPT-2's byte-to-symbol map (clip_edge.tokenizer.byte_to_unicode). */
  static String[] byteToUnicode() {
    String[] chars = new String[256];
    int shift = 0;
    for (int b = 0; b < 256; b++) {
      boolean printable = false;
      for (List<Integer> range : Contract.PRINTABLE_BYTES) {
        printable |= b >= range.get(0) && b <= range.get(1);
      }
      chars[b] = String.valueOf((char) (printable ? b : 256 + shift++));
    }
    return chars;
  }

  /** The id of {@code token}'s first spelling found in the vocabulary, which must be the one the export states. */
  private static int specialId(Map<String, Integer> vocab, String vocabName, Contract.Token token, String which)
      throws IOException {
    for (String spelling : token.spellings()) {
      Integer id = vocab.get(spelling);
      if (id == null) {
        continue;
      }
      if (token.id().isPresent() && token.id().getAsInt() != id) {
        throw new IOException(vocabName + ": the " + which + " token " + spelling + " has id " + id
            + "; the manifest's contract says " + token.id().getAsInt());
      }
      return id;
    }
    throw new IOException("vocab.json has no " + which + " token (looked for " + String.join(" or ",
        token.spellings()) + ")");
  }

  static Map<String, Integer> readVocabulary(String text, String file) throws IOException {
    Object value;
    try {
      value = Json.parse(text);
    } catch (Json.JsonException e) {
      Matcher offset = JSON_OFFSET.matcher(e.getMessage());
      String where = "";
      if (offset.find()) {
        int at = Math.min(Integer.parseInt(offset.group(1)), text.length());
        where = " line " + (1 + text.substring(0, at).chars().filter(c -> c == '\n').count());
      }
      throw new IOException(file + where + ": " + e.getMessage());
    }
    if (!(value instanceof Map) || ((Map<?, ?>) value).isEmpty()) {
      throw new IOException(file + ": not a non-empty JSON object of token -> id");
    }
    Map<String, Integer> vocab = new HashMap<>();
    Map<Integer, String> byId = new HashMap<>();
    for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
      String token = (String) entry.getKey();
      Object id = entry.getValue();
      if (!(id instanceof Long) || (Long) id < 0 || (Long) id > 1 << 24) {
        throw new IOException(file + ": token " + Json.quote(token) + " has id " + id
            + ", not an integer in 0.." + (1 << 24));
      }
      int tokenId = (int) (long) (Long) id;
      String other = byId.put(tokenId, token);
      if (other != null) {
        throw new IOException(file + ": tokens " + Json.quote(other) + " and " + Json.quote(token) + " share id "
            + tokenId);
      }
      vocab.put(token, tokenId);
    }
    return vocab;
  }

  /**
   * Merges in rank order as {left id, right id, result id} (clip_edge.tokenizer._load_merges): the first line is
   * a header when it contains "#version"; merges whose symbols are not in the vocabulary may only trail.
   */
  static List<int[]> readMerges(String text, String file, Map<String, Integer> vocab) throws IOException {
    List<int[]> merges = new ArrayList<>();
    Map<Long, Integer> seen = new HashMap<>();
    String firstUnusable = null;
    BufferedReader reader = new BufferedReader(new StringReader(text));
    int number = 0;
    for (String line; (line = reader.readLine()) != null; ) {
      number++;
      if (line.isEmpty() || (number == 1 && line.contains("#version"))) {
        continue;
      }
      String where = file + " line " + number;
      String[] parts = splitWhitespace(line);
      if (parts.length != 2) {
        throw new IOException(where + ": " + Json.quote(line) + " is not two space-separated symbols");
      }
      Integer left = vocab.get(parts[0]);
      Integer right = vocab.get(parts[1]);
      Integer result = vocab.get(parts[0] + parts[1]);
      if (left == null || right == null || result == null) {
        if (firstUnusable == null) {
          firstUnusable = where + ": merge " + Json.quote(line) + " uses symbols that are not in the vocabulary";
        }
        continue;
      }
      if (firstUnusable != null) {
        throw new IOException(firstUnusable);
      }
      Integer earlier = seen.put(((long) left << 32) | right, number);
      if (earlier != null) {
        throw new IOException(where + ": merge " + Json.quote(line) + " repeats line " + earlier);
      }
      merges.add(new int[] {left, right, result});
    }
    if (merges.isEmpty()) {
      throw new IOException(file + ": no merge usable with the vocabulary");
    }
    return merges;
  }

  /** Python's str.split(): the pieces between runs of whitespace (str.isspace), none empty. */
  private static String[] splitWhitespace(String line) {
    List<String> parts = new ArrayList<>(2);
    int start = -1;
    for (int i = 0; i <= line.length(); i++) {
      char c = i < line.length() ? line.charAt(i) : ' ';
      boolean space = Character.isWhitespace(c) || Character.isSpaceChar(c) || c == '\u0085';
      if (space && start >= 0) {
        parts.add(line.substring(start, i));
        start = -1;
      } else if (!space && start < 0) {
        start = i;
      }
    }
    return parts.toArray(new String[0]);
  }

  // --- small primitive collections ----------------------------------------------------------------------------

  /** Open-addressing map from long keys to non-negative ints; get() is -1 for a missing key. */
  private static final class LongIntMap {
    private final long[] keys;
    private final int[] values;
    private final int mask;

    LongIntMap(int expected) {
      int capacity = Integer.highestOneBit(Math.max(4, expected * 2)) << 1;
      keys = new long[capacity];
      values = new int[capacity];
      Arrays.fill(values, -1);
      mask = capacity - 1;
    }

    private int slot(long key) {
      long h = key * 0x9E3779B97F4A7C15L;
      return (int) (h ^ (h >>> 32)) & mask;
    }

    void put(long key, int value) {
      int i = slot(key);
      while (values[i] >= 0 && keys[i] != key) {
        i = (i + 1) & mask;
      }
      keys[i] = key;
      values[i] = value;
    }

    int get(long key) {
      int i = slot(key);
      while (values[i] >= 0) {
        if (keys[i] == key) {
          return values[i];
        }
        i = (i + 1) & mask;
      }
      return -1;
    }
  }

  /** A binary min-heap of longs. */
  private static final class LongHeap {
    private long[] items;
    private int size;

    LongHeap(int capacity) {
      items = new long[Math.max(16, capacity)];
    }

    boolean isEmpty() {
      return size == 0;
    }

    void push(long item) {
      if (size == items.length) {
        items = Arrays.copyOf(items, size * 2);
      }
      int i = size++;
      while (i > 0 && items[(i - 1) / 2] > item) {
        items[i] = items[(i - 1) / 2];
        i = (i - 1) / 2;
      }
      items[i] = item;
    }

    long pop() {
      long top = items[0];
      long last = items[--size];
      int i = 0;
      while (true) {
        int child = 2 * i + 1;
        if (child >= size) {
          break;
        }
        if (child + 1 < size && items[child + 1] < items[child]) {
          child++;
        }
        if (items[child] >= last) {
          break;
        }
        items[i] = items[child];
        i = child;
      }
      items[i] = last;
      return top;
    }
  }

  /** A growable int array. */
  private static final class IntList {
    private int[] items;
    private int size;

    IntList(int capacity) {
      items = new int[Math.max(4, capacity)];
    }

    void add(int item) {
      if (size == items.length) {
        items = Arrays.copyOf(items, size * 2);
      }
      items[size++] = item;
    }

    void addAll(int[] more) {
      for (int item : more) {
        add(item);
      }
    }

    int size() {
      return size;
    }

    int[] array() {
      return items;
    }
  }
}

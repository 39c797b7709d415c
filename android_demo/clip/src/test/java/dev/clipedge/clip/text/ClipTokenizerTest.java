package dev.clipedge.clip.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.clipedge.clip.ExportFixture;
import dev.clipedge.clip.Manifest;
import dev.clipedge.clip.Manifest.ExportException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ClipTokenizerTest {
  private static ClipTokenizer tokenizer;

  @BeforeAll
  static void load() throws IOException {
    tokenizer = TestFiles.tokenizer(77);
  }

  private static int[] ids(List<?> values) {
    return values.stream().mapToInt(v -> (int) (long) (Long) v).toArray();
  }

  @Test
  void encodesLikeOpenAisReference() throws IOException {
    // Expected ids from open_clip's SimpleTokenizer with ftfy (android_demo/make_tokenizer_test_resources.py).
    List<Map<?, ?>> cases = TestFiles.jsonLines("tokenizer_golden.jsonl");
    assertTrue(cases.size() >= 100);
    List<String> wrong = new ArrayList<>();
    for (Map<?, ?> row : cases) {
      String text = (String) row.get("text");
      int[] expected = ids((List<?>) row.get("ids"));
      int[] got = tokenizer.encode(text);
      if (!Arrays.equals(expected, got)) {
        wrong.add(text + "\n  expected " + Arrays.toString(expected) + "\n  got      " + Arrays.toString(got));
      }
    }
    assertEquals(List.of(), wrong);
  }

  @Test
  void framesPadsAndTruncates() {
    assertEquals(77, tokenizer.contextLength());
    assertEquals(49406, tokenizer.startTokenId());
    assertEquals(49407, tokenizer.endTokenId());
    // "a photo of a cat" in OpenAI's vocabulary.
    int[] photo = {49406, 320, 1125, 539, 320, 2368, 49407};
    assertArrayEquals(photo, tokenizer.encode("A photo of a CAT"));
    ClipTokenizer.Tokens tokens = tokenizer.tokenize("a photo of a cat");
    assertEquals(77, tokens.ids().length);
    assertArrayEquals(photo, Arrays.copyOf(tokens.ids(), 7));
    assertEquals(0, tokens.ids()[7]);
    assertEquals(7, Arrays.stream(tokens.paddingMask()).sum());
    assertEquals(1, tokens.paddingMask()[6]);
    assertArrayEquals(new int[] {49406, 49407}, tokenizer.encode(" \t "));
    // The first contextLength - 1 tokens and the end token last.
    int[] cut = tokenizer.encode("a photo of a cat ".repeat(40));
    assertEquals(77, cut.length);
    assertEquals(49407, cut[76]);
    assertArrayEquals(Arrays.copyOfRange(photo, 1, 6), Arrays.copyOfRange(cut, 1, 6));
  }

  @Test
  void shortContextLength() throws IOException {
    ClipTokenizer five = TestFiles.tokenizer(5);
    assertArrayEquals(new int[] {49406, 320, 1125, 539, 49407}, five.encode("a photo of a cat"));
    assertArrayEquals(new int[] {49406, 49407}, TestFiles.tokenizer(2).encode("a photo"));
    assertThrows(IllegalArgumentException.class, () -> TestFiles.tokenizer(1));
  }

  @Test
  void longInputIsBoundedWork() throws IOException {
    // Counted, not timed: the work that long inputs once made quadratic, read from the tokenizer's and cleaner's
    // counters and bounded by the input's length. A fresh tokenizer, so that no other test's words are cached.
    ClipTokenizer fresh = TestFiles.tokenizer(77);
    // Real text with everything but ASCII letters dropped is one word to pre-tokenisation; OpenAI's loop needs a
    // merge round per distinct pair it merges on it, each looking up every pair of the word.
    String letters = fresh.cleaner().clean(String.join(" ", goldenTexts())).replaceAll("[^a-z]", "");
    String prose = letters.repeat(20_000 / letters.length() + 1).substring(0, 20_000);
    // One word of a megabyte (no spaces), of rare pairs, of two-byte letters, of prose: the heap BPE looks each
    // initial pair up once, then at most one popped pair and two new neighbours per merge, n - 1 merges at most.
    for (String word : List.of("a".repeat(1_000_000), "xq".repeat(500_000), "\u00e9".repeat(300_000), prose)) {
      long n = word.getBytes(StandardCharsets.UTF_8).length;
      long before = fresh.pairLookups.sum();
      assertEquals(77, fresh.encode(word).length);
      long lookups = fresh.pairLookups.sum() - before;
      assertTrue(lookups >= n - 1 && lookups <= 6 * (n - 1), n + " bytes, " + lookups + " pair lookups");
    }
    // The loop on the first 2,000 letters of that prose already exceeds the bound: a regression to it on long
    // words fails above (on the repetitive words it merges every occurrence per round and stays linear).
    byte[] start = prose.substring(0, 2000).getBytes(StandardCharsets.UTF_8);
    long before = fresh.pairLookups.sum();
    fresh.bpe(start, false);
    long loop = fresh.pairLookups.sum() - before;
    assertTrue(loop > 6 * (start.length - 1), start.length + " bytes, loop " + loop);

    // 200,000 lines of one word: 75 words fill the tokens between start and end, so the cleaner stops after
    // the 75th line instead of fixing all of them.
    long lines = fresh.cleaner().linesFixed.sum();
    assertEquals(77, fresh.encode("word\n".repeat(200_000)).length);
    assertEquals(75, fresh.cleaner().linesFixed.sum() - lines);

    // ftfy unescapes one level per pass until nothing changes: 20,000 levels come down to "<". One search of the
    // whole line, then each pass searches only a window around the one replacement of the pass before (the
    // replacement, 40 characters either side and 40 of lookahead for a match starting in it); one search of the
    // whole line per level would be about n * 20,000 / 2 characters.
    String nested = "&amp;" + "amp;".repeat(20_000) + "lt;";
    long searched = fresh.cleaner().entitySearchChars.sum();
    assertArrayEquals(fresh.encode("<"), fresh.encode(nested));
    long chars = fresh.cleaner().entitySearchChars.sum() - searched;
    int levels = 20_002;
    assertTrue(chars >= nested.length() && chars <= nested.length() + levels * (3L * 40 + 5),
        nested.length() + " characters, " + chars + " searched");
  }

  private static List<String> goldenTexts() throws IOException {
    List<String> texts = new ArrayList<>();
    for (Map<?, ?> row : TestFiles.jsonLines("tokenizer_golden.jsonl")) {
      texts.add((String) row.get("text"));
    }
    return texts;
  }

  @Test
  void heapBpeOfLongWordsEqualsOpenAisLoop() throws IOException {
    // Long words take the n log n BPE; it must merge exactly as OpenAI's loop (which the golden cases check).
    assertTrue(tokenizer.ranksConsistent());
    int compared = 0;
    for (Map<?, ?> row : TestFiles.jsonLines("tokenizer_golden.jsonl")) {
      String glued = tokenizer.cleaner().clean((String) row.get("text")).replace(" ", "");
      for (int start = 0; start + 48 <= glued.length(); start += 11) {
        byte[] word = glued.substring(start, Math.min(glued.length(), start + 48 + start % 200))
            .getBytes(java.nio.charset.StandardCharsets.UTF_8);
        assertArrayEquals(tokenizer.bpe(word, false), tokenizer.bpe(word, true));
        compared++;
      }
    }
    assertTrue(compared > 100, "compared " + compared);
  }

  @Test
  void cacheStaysBounded() {
    for (int i = 0; i < ClipTokenizer.CACHE_LIMIT * 3; i++) {
      tokenizer.encode("w" + Integer.toString(i, 36));
    }
    assertTrue(tokenizer.cacheSize() <= ClipTokenizer.CACHE_LIMIT);
  }

  @Test
  void threadSafe() throws IOException {
    List<Map<?, ?>> cases = TestFiles.jsonLines("tokenizer_golden.jsonl");
    ClipTokenizer fresh = TestFiles.tokenizer(77);
    long wrong = IntStream.range(0, 20).parallel().flatMap(round -> IntStream.range(0, cases.size()))
        .filter(i -> !Arrays.equals(ids((List<?>) cases.get(i).get("ids")),
            fresh.encode((String) cases.get(i).get("text"))))
        .count();
    assertEquals(0, wrong);
  }

  @Test
  void malformedMergesNameFileAndLine() throws IOException {
    String vocab = TestFiles.vocabJson();
    String merges = TestFiles.mergesTxt();
    String[] lines = merges.split("\n", -1);
    lines[3] = "onlyone";
    IOException one = assertThrows(IOException.class, () -> load(vocab, String.join("\n", lines)));
    assertEquals("merges.txt line 4: \"onlyone\" is not two space-separated symbols", one.getMessage());
    lines[3] = lines[2];
    IOException repeated = assertThrows(IOException.class, () -> load(vocab, String.join("\n", lines)));
    assertTrue(repeated.getMessage().startsWith("merges.txt line 4: merge"), repeated.getMessage());
    assertTrue(repeated.getMessage().endsWith("repeats line 3"), repeated.getMessage());
    String unknownFirst = merges.replaceFirst("\n", "\nzzz\u4e00 qqq\n");
    IOException unknown = assertThrows(IOException.class, () -> load(vocab, unknownFirst));
    assertTrue(unknown.getMessage().startsWith("merges.txt line 2: merge"), unknown.getMessage());
    IOException empty = assertThrows(IOException.class, () -> load(vocab, "#version: 0.2\n"));
    assertEquals("merges.txt: no merge usable with the vocabulary", empty.getMessage());
  }

  @Test
  void malformedVocabularyNamesTheProblem() throws IOException {
    String merges = TestFiles.mergesTxt();
    IOException json = assertThrows(IOException.class, () -> load("{\n\"a\": 1,\n\"b\" 2}", merges));
    assertTrue(json.getMessage().startsWith("vocab.json line 3: invalid JSON"), json.getMessage());
    IOException id = assertThrows(IOException.class, () -> load("{\"a\": -1}", merges));
    assertEquals("vocab.json: token \"a\" has id -1, not an integer in 0..16777216", id.getMessage());
    IOException shared = assertThrows(IOException.class, () -> load("{\"a\": 1, \"b\": 1}", merges));
    assertEquals("vocab.json: tokens \"a\" and \"b\" share id 1", shared.getMessage());
    String noStart = TestFiles.vocabJson().replace("<|startoftext|>", "<|start|>");
    IOException start = assertThrows(IOException.class, () -> load(noStart, merges));
    assertTrue(start.getMessage().contains("no start token"), start.getMessage());
  }

  @Test
  void fromExportReadsTheFilesAndSpecialTokensItsContractNames(@TempDir Path dir) throws Exception {
    // The fixture's contract puts the tokenizer's files under names of its own and states the tokens' ids.
    Map<String, String> files = Map.of("tokenizer/v.json", TestFiles.vocabJson(), "tokenizer/m.txt",
        TestFiles.mergesTxt(), "tokenizer/c.json", TestFiles.resourceText("text_cleaning.json"));
    Path export = writeExport(dir.resolve("ok"), ExportFixture.contract(), files);
    assertArrayEquals(tokenizer.encode("a cat"), ClipTokenizer.fromExport(Manifest.load(export), 77).encode("a cat"));

    Path other = writeExport(dir.resolve("other"),
        ExportFixture.contract().replace("\"id\": 49406", "\"id\": 7"), files);
    IOException id = assertThrows(IOException.class, () -> ClipTokenizer.fromExport(Manifest.load(other), 77));
    assertEquals(other.resolve("tokenizer/v.json") + ": the start token <|startoftext|> has id 49406; the "
        + "manifest's contract says 7", id.getMessage());

    Files.delete(export.resolve("tokenizer/m.txt"));
    ExportException missing = assertThrows(ExportException.class,
        () -> ClipTokenizer.fromExport(Manifest.load(export), 77));
    assertEquals(export.resolve("tokenizer/m.txt") + ": missing (listed in the export's manifest.json)",
        missing.getMessage());
  }

  /** DIR holding {@code files} (path to text) listed with their sha256 by a format 1 manifest with {@code contract}. */
  private static Path writeExport(Path dir, String contract, Map<String, String> files) throws Exception {
    List<String> artifacts = new ArrayList<>();
    for (Map.Entry<String, String> file : files.entrySet()) {
      byte[] bytes = file.getValue().getBytes(StandardCharsets.UTF_8);
      Path path = dir.resolve(file.getKey());
      Files.createDirectories(path.getParent());
      Files.write(path, bytes);
      String sha256 = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
      artifacts.add("{\"path\": \"" + file.getKey() + "\", \"sha256\": \"" + sha256 + "\", \"bytes\": "
          + bytes.length + "}");
    }
    Files.writeString(dir.resolve("manifest.json"), "{\"format_version\": 1, \"contract\": " + contract
        + ", \"name\": \"t\", \"config\": {}, \"artifacts\": [" + String.join(", ", artifacts) + "]}");
    return dir;
  }

  private static ClipTokenizer load(String vocab, String merges) throws IOException {
    return ClipTokenizer.load(TestFiles.stream(vocab), TestFiles.stream(merges),
        TestFiles.resource("text_cleaning.json"), 77);
  }
}

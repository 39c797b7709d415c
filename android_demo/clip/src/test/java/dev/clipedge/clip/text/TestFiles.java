package dev.clipedge.clip.text;

import dev.clipedge.clip.Json;
import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPInputStream;

/**
 * The files the tokenizer tests load, from a fresh clone without an export: vocab.json and merges.txt are built
 * from OpenAI's bpe_simple_vocab_16e6.txt.gz in clip_edge/assets the way clip_edge.tokenizer's
 * from_openai_vocabulary() and vocabulary_files() build them; text_cleaning.json and the golden files are test
 * resources written by android_demo/make_tokenizer_test_resources.py.
 */
final class TestFiles {
  /** CLIP uses the first 48,894 of the file's merges (clip_edge.tokenizer.OPENAI_MERGE_COUNT). */
  static final int OPENAI_MERGE_COUNT = 49152 - 256 - 2;

  private static String vocabJson;
  private static String mergesTxt;

  private TestFiles() {}

  static Path repo() {
    Path base = Path.of(System.getProperty("basedir", "")).toAbsolutePath();
    return base.getParent().getParent();
  }

  static synchronized String vocabJson() throws IOException {
    build();
    return vocabJson;
  }

  static synchronized String mergesTxt() throws IOException {
    build();
    return mergesTxt;
  }

  private static void build() throws IOException {
    if (vocabJson != null) {
      return;
    }
    Path gz = repo().resolve("clip_edge/assets/bpe_simple_vocab_16e6.txt.gz");
    List<String> merges = new ArrayList<>();
    try (BufferedReader reader = new BufferedReader(new InputStreamReader(
        new GZIPInputStream(Files.newInputStream(gz)), StandardCharsets.UTF_8))) {
      reader.readLine();
      for (String line; merges.size() < OPENAI_MERGE_COUNT && (line = reader.readLine()) != null; ) {
        merges.add(line);
      }
    }
    List<String> symbols = new ArrayList<>();
    // Python's byte_to_unicode() order: printable bytes first, then the others moved to U+0100 upwards.
    String[] byteChars = ClipTokenizer.byteToUnicode();
    for (int b = 0; b < 256; b++) {
      if (byteChars[b].charAt(0) < 256) {
        symbols.add(byteChars[b]);
      }
    }
    for (int b = 0; b < 256; b++) {
      if (byteChars[b].charAt(0) >= 256) {
        symbols.add(byteChars[b]);
      }
    }
    for (int i = 0; i < 256; i++) {
      symbols.add(symbols.get(i) + "</w>");
    }
    for (String merge : merges) {
      symbols.add(merge.replace(" ", ""));
    }
    symbols.add("<|startoftext|>");
    symbols.add("<|endoftext|>");
    StringBuilder vocab = new StringBuilder("{");
    for (int id = 0; id < symbols.size(); id++) {
      vocab.append(id == 0 ? "" : ", ").append(Json.quote(symbols.get(id))).append(": ").append(id);
    }
    vocabJson = vocab.append('}').toString();
    mergesTxt = "#version: 0.2\n" + String.join("\n", merges) + "\n";
  }

  static InputStream stream(String text) {
    return new ByteArrayInputStream(text.getBytes(StandardCharsets.UTF_8));
  }

  static InputStream resource(String name) {
    InputStream in = TestFiles.class.getResourceAsStream(name);
    if (in == null) {
      throw new IllegalStateException("test resource " + name
          + " missing; run android_demo/make_tokenizer_test_resources.py");
    }
    return in;
  }

  static String resourceText(String name) throws IOException {
    try (InputStream in = resource(name)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  /** The JSON objects of a .jsonl resource. */
  static List<Map<?, ?>> jsonLines(String name) throws IOException {
    List<Map<?, ?>> rows = new ArrayList<>();
    for (String line : resourceText(name).split("\n")) {
      if (!line.isEmpty()) {
        rows.add((Map<?, ?>) Json.parse(line));
      }
    }
    return rows;
  }

  static ClipTokenizer tokenizer(int contextLength) throws IOException {
    return ClipTokenizer.load(stream(vocabJson()), stream(mergesTxt()), resource("text_cleaning.json"), contextLength);
  }
}

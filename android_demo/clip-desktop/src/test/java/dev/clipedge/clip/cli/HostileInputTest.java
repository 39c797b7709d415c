package dev.clipedge.clip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Command lines and stdin that must end in one line on stderr, not in exhausted threads, memory or a crash. */
class HostileInputTest {
  /** FIPS 180-2's first SHA-256 test vector: the digest of "abc". */
  private static final String ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

  @TempDir Path folder;

  /** Endless bytes without a line end, counting what was read from it. */
  private static final class EndlessLine extends InputStream {
    long read;

    @Override
    public int read() {
      read++;
      return 'a';
    }

    @Override
    public int read(byte[] b, int off, int len) {
      java.util.Arrays.fill(b, off, off + len, (byte) 'a');
      read += len;
      return len;
    }
  }

  private static String[] run(InputStream stdin, String... argv) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int status = Main.run(argv, stdin, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    return new String[] {Integer.toString(status), out.toString(StandardCharsets.UTF_8),
        err.toString(StandardCharsets.UTF_8)};
  }

  @Test
  void threadCountsAboveTheBoundAreRefusedBeforeAnythingStarts() {
    // The export does not exist: the refusal comes from the flag check, before the manifest is read or a model
    // (and its threads) is opened.
    String missing = folder.resolve("no-export").toString();
    for (String threads : new String[] {"1000000", "257"}) {
      String[] result = run(InputStream.nullInputStream(), "embed-text", "--export", missing, "--variant",
          "float32", "--threads", threads);
      assertEquals("2", result[0]);
      assertTrue(result[2].startsWith("clip-jvm embed-text: --threads must be at most 256, got " + threads + ";"),
          result[2]);
      assertEquals(1, result[2].strip().split("\n").length, result[2]);
    }
    // 256 passes the flag check and fails only at the (missing) export.
    String[] result = run(InputStream.nullInputStream(), "embed-image", "--export", missing, "--variant",
        "float32", "--threads", "256", "x.png");
    assertEquals("1", result[0]);
    assertTrue(result[2].contains("does not exist"), result[2]);
  }

  @Test
  void tokenizeRefusesALongLineAfterReadingAtMostTheBound() {
    EndlessLine endless = new EndlessLine();
    TokenizeCommand.LineReader lines = new TokenizeCommand.LineReader(endless);
    IOException error = assertThrows(IOException.class, lines::next);
    assertEquals("stdin line 1 is longer than 4194304 bytes", error.getMessage());
    assertTrue(endless.read <= TokenizeCommand.MAX_LINE_BYTES + (1 << 16), "read " + endless.read);
  }

  @Test
  void tokenizeNamesTheLongLineAndKeepsTheLinesBefore() throws IOException {
    byte[] before = "\"a\"\r\n\"b\"\n".getBytes(StandardCharsets.UTF_8);
    TokenizeCommand.LineReader lines = new TokenizeCommand.LineReader(
        new java.io.SequenceInputStream(new ByteArrayInputStream(before), new EndlessLine()));
    assertEquals("\"a\"", lines.next());
    assertEquals("\"b\"", lines.next());
    IOException error = assertThrows(IOException.class, lines::next);
    assertEquals("stdin line 3 is longer than 4194304 bytes", error.getMessage());
  }

  @Test
  void embedTextRefusesALongLineAfterReadingAtMostTheBound() {
    EndlessLine endless = new EndlessLine();
    JsonLines lines = new JsonLines(endless);
    IllegalArgumentException error = assertThrows(IllegalArgumentException.class, lines::next);
    assertEquals("stdin line 1 is longer than 1048576 characters", error.getMessage());
    // The decoder reads ahead by a buffer (8 KiB), not by the line.
    assertTrue(endless.read <= JsonLines.MAX_LINE_CHARS + (1 << 16), "read " + endless.read);
  }

  @Test
  void tokenizeChecksTheVocabularyAgainstTheManifest() throws IOException {
    Path export = folder.resolve("export");
    Files.createDirectories(export.resolve("assets"));
    Files.writeString(export.resolve("manifest.json"), "{\"name\": \"t\", \"config\": {\"context_length\": 5}, "
        + "\"artifacts\": [{\"path\": \"assets/vocab.json\", \"sha256\": \"" + ABC_SHA256 + "\", \"bytes\": 3}]}");
    Files.writeString(export.resolve("assets/vocab.json"), "abd");  // tampered: the manifest says "abc"
    String[] result = run(new ByteArrayInputStream("\"a cat\"\n".getBytes(StandardCharsets.UTF_8)),
        "tokenize", "--export", export.toString());
    assertEquals("1", result[0]);
    assertTrue(result[2].contains("vocab.json: sha256 ") && result[2].contains("does not match the manifest's"),
        result[2]);
    assertEquals("", result[1]);
  }
}

package dev.clipedge.clip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * tokenize's own parts: the context length it pads to, read from the manifest (a wrong one changes every text
 * embedding), and its byte-level line reader (long lines: HostileInputTest).
 */
class TokenizeCommandTest {
  @TempDir Path folder;

  private Path export(String config) throws IOException {
    Path export = Files.createDirectories(folder.resolve("e" + Math.abs(config.hashCode())));
    Files.writeString(export.resolve("manifest.json"), "{\"name\": \"t\", \"config\": " + config + "}");
    return export;
  }

  @Test
  void contextLengthIsTheManifests() throws IOException {
    assertEquals(77, TokenizeCommand.contextLength(export("{\"context_length\": 77}")));
    assertEquals(2, TokenizeCommand.contextLength(export("{\"context_length\": 2}")));
    assertEquals(65536, TokenizeCommand.contextLength(export("{\"context_length\": 65536}")));
    for (String bad : new String[] {"{\"context_length\": 1}", "{\"context_length\": 65537}",
        "{\"context_length\": \"77\"}", "{\"context_length\": 77.5}", "{}", "[]"}) {
      Path export = export(bad);
      IOException e = assertThrows(IOException.class, () -> TokenizeCommand.contextLength(export), bad);
      assertTrue(e.getMessage().startsWith(export.resolve("manifest.json") + ": config.context_length is "),
          e.getMessage());
    }
    Path none = Files.createDirectories(folder.resolve("none"));
    IOException e = assertThrows(IOException.class, () -> TokenizeCommand.contextLength(none));
    assertEquals(none.resolve("manifest.json") + " not found (is " + none + " an export directory?)",
        e.getMessage());
  }

  @Test
  void lineReaderSplitsBytesAndDecodesEachLine() throws IOException {
    byte[] bytes = "\"a\"\r\n\n\"\u00e9\ud83d\ude00\"\n\"end\"".getBytes(StandardCharsets.UTF_8);
    TokenizeCommand.LineReader lines = new TokenizeCommand.LineReader(new ByteArrayInputStream(bytes));
    assertEquals("\"a\"", lines.next());
    assertEquals("", lines.next());
    assertEquals("\"\u00e9\ud83d\ude00\"", lines.next());
    assertEquals("\"end\"", lines.next());
    assertEquals(4, lines.number());
    assertNull(lines.next());
    // A bare "\r" at the end of input is content (only "\r\n" ends a line).
    assertEquals("x\r", new TokenizeCommand.LineReader(new ByteArrayInputStream("x\r".getBytes(
        StandardCharsets.UTF_8))).next());
  }

  @Test
  void lineThatIsNotUtf8IsNamed() throws IOException {
    // An overlong encoding of "/" (C0 AF) is not UTF-8, though a lenient decoder would read it as "/".
    byte[] bytes = {'"', 'a', '"', '\n', '"', (byte) 0xc0, (byte) 0xaf, '"', '\n'};
    TokenizeCommand.LineReader lines = new TokenizeCommand.LineReader(new ByteArrayInputStream(bytes));
    assertEquals("\"a\"", lines.next());
    IOException e = assertThrows(IOException.class, lines::next);
    assertEquals("stdin line 2 is not UTF-8", e.getMessage());
  }
}

package dev.clipedge.clip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.clipedge.clip.Json;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** What embed-text reads (one JSON value per stdin line) and what the embedding commands print. */
class JsonLinesTest {
  private static JsonLines lines(byte[] bytes) {
    return new JsonLines(new ByteArrayInputStream(bytes));
  }

  private static JsonLines lines(String text) {
    return lines(text.getBytes(StandardCharsets.UTF_8));
  }

  @Test
  void linesWithoutTerminatorsAndNumbered() throws IOException {
    JsonLines in = lines("\"a\"\r\n\n\"caf\u00e9 \ud83d\ude00\"\n\"last, no newline\"");
    assertEquals("\"a\"", in.next()); // "\r\n": the '\r' is not part of the line
    assertEquals(1, in.lineNumber());
    assertEquals("", in.next());
    assertEquals("\"caf\u00e9 \ud83d\ude00\"", in.next());
    assertEquals("\"last, no newline\"", in.next());
    assertEquals(4, in.lineNumber());
    assertNull(in.next());
    assertNull(lines("").next());
    // A lone '\r' in the middle is content, not a terminator.
    assertEquals("a\rb", lines("a\rb\n").next());
  }

  @Test
  void malformedUtf8NamesTheLine() throws IOException {
    byte[] bytes = {'"', 'o', 'k', '"', '\n', '"', (byte) 0xc3, '"', '\n'}; // C3 starts a 2-byte sequence
    JsonLines in = lines(bytes);
    assertEquals("\"ok\"", in.next());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, in::next);
    assertEquals("stdin line 2 is not valid UTF-8", e.getMessage());
  }

  @Test
  void arrayIsJsonThatReadsBackAsTheSameFloats() {
    // Written by hand: Float.toString's shortest digits, JSON's exponent form.
    assertEquals("[1.0, -0.5, 1.0E-10, 0.1]", JsonLines.array(new float[] {1f, -0.5f, 1e-10f, 0.1f}));
    assertEquals("[]", JsonLines.array(new float[0]));
    float[] values = {0.1f, -0.33333334f, 1.17549435E-38f, 3.4028235E38f, 1.4E-45f, -0f, 0.70710677f};
    List<?> parsed = (List<?>) Json.parse(JsonLines.array(values));
    assertEquals(values.length, parsed.size());
    for (int i = 0; i < values.length; i++) {
      // Each number reads back (as Python's float() would, to a double) to exactly the float written.
      assertEquals(values[i], (float) ((Number) parsed.get(i)).doubleValue(), 0f, "value " + i);
      assertEquals(Float.floatToIntBits(values[i]), Float.floatToIntBits((float) ((Number) parsed.get(i))
          .doubleValue()), "bits of value " + i);
    }
  }
}

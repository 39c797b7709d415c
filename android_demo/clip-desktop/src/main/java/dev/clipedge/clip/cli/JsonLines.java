package dev.clipedge.clip.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/** What the commands read from stdin and write to stdout: one JSON value per line. */
final class JsonLines {
  /** No input line is legitimately this long; longer ones are refused instead of filling memory. */
  static final int MAX_LINE_CHARS = 1 << 20;

  private final Reader reader;
  private int lineNumber;

  JsonLines(InputStream in) {
    // Malformed UTF-8 is an error naming the line, not a silent replacement character.
    this.reader = new InputStreamReader(in, StandardCharsets.UTF_8.newDecoder()
        .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT));
  }

  int lineNumber() {
    return lineNumber;
  }

  /** The next line without its terminator, or null at the end of input. */
  String next() throws IOException {
    StringBuilder line = new StringBuilder();
    int c;
    try {
      while ((c = reader.read()) >= 0 && c != '\n') {
        if (line.length() == MAX_LINE_CHARS) {
          throw new IllegalArgumentException("stdin line " + (lineNumber + 1) + " is longer than "
              + MAX_LINE_CHARS + " characters");
        }
        line.append((char) c);
      }
    } catch (java.nio.charset.CharacterCodingException e) {
      throw new IllegalArgumentException("stdin line " + (lineNumber + 1) + " is not valid UTF-8");
    }
    if (c < 0 && line.length() == 0) {
      return null;
    }
    lineNumber++;
    int end = line.length();
    if (end > 0 && line.charAt(end - 1) == '\r') {
      line.setLength(end - 1);
    }
    return line.toString();
  }

  /** A JSON array of the floats, each written with the fewest digits that read back as the same float. */
  static String array(float[] values) {
    StringBuilder out = new StringBuilder(values.length * 12).append('[');
    for (int i = 0; i < values.length; i++) {
      if (i > 0) {
        out.append(", ");
      }
      out.append(Float.toString(values[i]));
    }
    return out.append(']').toString();
  }
}

package dev.clipedge.clip.cli;

import dev.clipedge.clip.Json;
import dev.clipedge.clip.TextEncoder;
import dev.clipedge.clip.text.ClipTokenizer;
import java.io.InputStream;
import java.io.PrintStream;

/** {@code embed-text}: one JSON string per stdin line -> one JSON array (the unit-norm embedding) per line. */
final class EmbedTextCommand implements Main.Command {
  @Override
  public String usage() {
    return "embed-text " + ExportFlags.USAGE + "  (stdin: one JSON string per line)";
  }

  @Override
  public int run(Main.Options options, InputStream in, PrintStream out) throws Exception {
    ExportFlags export = ExportFlags.fromOptions(options);
    if (!options.positional().isEmpty()) {
      throw new Main.UsageException("embed-text reads its texts from stdin, not from arguments");
    }
    try (TextEncoder encoder = new TextEncoder(export.manifest, export.variant, export.loader)) {
      ClipTokenizer tokenizer = ClipTokenizer.fromExport(export.manifest, encoder.contextLength());
      JsonLines lines = new JsonLines(in);
      for (String line; (line = lines.next()) != null; ) {
        int[] ids = tokenizer.tokenize(text(line, lines.lineNumber())).ids();
        out.println(JsonLines.array(encoder.encode(ids)));
        if (lines.lineNumber() == 1) {
          export.time("encode", () -> encoder.encode(ids));
        }
      }
    }
    return 0;
  }

  static String text(String line, int number) {
    Object value;
    try {
      value = Json.parse(line);
    } catch (Json.JsonException e) {
      throw new IllegalArgumentException("stdin line " + number + ": " + e.getMessage());
    }
    if (!(value instanceof String)) {
      throw new IllegalArgumentException("stdin line " + number + " is not a JSON string");
    }
    return (String) value;
  }
}

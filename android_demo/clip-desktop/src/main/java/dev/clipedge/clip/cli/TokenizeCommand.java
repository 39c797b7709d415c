package dev.clipedge.clip.cli;

import dev.clipedge.clip.Contract;
import dev.clipedge.clip.Json;
import dev.clipedge.clip.Manifest;
import dev.clipedge.clip.text.ClipTokenizer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@code tokenize --export DIR}: one JSON string per line on stdin, one JSON array of token ids per line on stdout
 * (start token to end token, no padding), with the export's vocabulary and context length. Streams: each line is
 * answered before the next is read.
 *
 * <p>Hidden option {@code --benchmark SECONDS}: reads all lines, tokenizes them repeatedly on one thread (after two
 * warm-up passes) for about that long and prints {@code {"texts_per_second": ..., "texts": ...}} instead
 * (benchmarks/bench_jvm_tokenizer.py).
 */
public final class TokenizeCommand implements Main.Command {
  /**
   * A longer stdin line is refused rather than buffered: a million characters in any script, with room for
   * JSON escapes. The tokenizer needs about 30 bytes of memory per input byte (a 65 MB line took 2.1 GB), and it
   * keeps only the first context-length tokens anyway.
   */
  static final int MAX_LINE_BYTES = 4 << 20;

  @Override
  public String usage() {
    return "tokenize --export DIR  (stdin: one JSON string per line; stdout: one JSON array of token ids per line)";
  }

  @Override
  public int run(Main.Options options, InputStream in, PrintStream out) throws Exception {
    Path export = Path.of(options.required("export"));
    String benchmark = options.optional("benchmark", null);
    options.rejectUnknown();
    int contextLength = contextLength(export);
    // The vocabulary is checked against the manifest's sha256, as embed-text and classify check it.
    ClipTokenizer tokenizer = ClipTokenizer.fromExport(Manifest.load(export), contextLength);
    LineReader lines = new LineReader(in);
    if (benchmark != null) {
      return benchmark(tokenizer, lines, seconds(benchmark), out);
    }
    StringBuilder json = new StringBuilder();
    for (String line; (line = lines.next()) != null; ) {
      json.setLength(0);
      json.append('[');
      int[] ids = tokenizer.encode(text(line, lines.number()));
      for (int i = 0; i < ids.length; i++) {
        json.append(i == 0 ? "" : ",").append(ids[i]);
      }
      out.println(json.append(']'));
      out.flush();
    }
    return 0;
  }

  /** DIR/manifest.json's config.context_length. */
  static int contextLength(Path export) throws IOException {
    Path manifest = export.resolve(Contract.MANIFEST);
    if (!Files.isRegularFile(manifest)) {
      throw new IOException(manifest + " not found (is " + export + " an export directory?)");
    }
    Object value;
    try {
      value = Json.parse(Files.readString(manifest, StandardCharsets.UTF_8));
    } catch (Json.JsonException | IOException e) {
      throw new IOException(manifest + ": " + e.getMessage());
    }
    Object config = value instanceof Map ? ((Map<?, ?>) value).get("config") : null;
    Object length = config instanceof Map ? ((Map<?, ?>) config).get("context_length") : null;
    if (!(length instanceof Long) || (Long) length < 2 || (Long) length > 1 << 16) {
      throw new IOException(manifest + ": config.context_length is " + length + ", expected an integer >= 2");
    }
    return (int) (long) (Long) length;
  }

  private static String text(String line, int number) {
    Object value;
    try {
      value = Json.parse(line);
    } catch (Json.JsonException e) {
      throw new IllegalArgumentException("stdin line " + number + " is not a JSON string: " + e.getMessage());
    }
    if (!(value instanceof String)) {
      String kind = value instanceof Map ? "an object" : value instanceof List ? "an array"
          : value instanceof Boolean ? "a boolean" : value == null ? "null" : "a number";
      throw new IllegalArgumentException("stdin line " + number + " is " + kind + ", expected a JSON string");
    }
    return (String) value;
  }

  private static double seconds(String value) {
    try {
      double seconds = Double.parseDouble(value);
      if (seconds > 0 && seconds <= 3600) {
        return seconds;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new Main.UsageException("--benchmark needs seconds in (0, 3600], got '" + value + "'");
  }

  private static int benchmark(ClipTokenizer tokenizer, LineReader lines, double seconds, PrintStream out)
      throws IOException {
    List<String> texts = new ArrayList<>();
    for (String line; (line = lines.next()) != null; ) {
      texts.add(text(line, lines.number()));
    }
    if (texts.isEmpty()) {
      throw new IllegalArgumentException("--benchmark needs texts on stdin");
    }
    long checksum = 0;
    for (int pass = 0; pass < 2; pass++) {
      for (String text : texts) {
        checksum += tokenizer.encode(text).length;
      }
    }
    long count = 0;
    long start = System.nanoTime();
    long deadline = start + (long) (seconds * 1e9);
    while (System.nanoTime() < deadline) {
      for (String text : texts) {
        checksum += tokenizer.encode(text).length;
      }
      count += texts.size();
    }
    double elapsed = (System.nanoTime() - start) / 1e9;
    out.println("{\"texts_per_second\": " + count / elapsed + ", \"texts\": " + count + ", \"seconds\": " + elapsed
        + ", \"checksum\": " + checksum + "}");
    return 0;
  }

  /** Lines of a byte stream, decoded as UTF-8, without their terminator ("\n" or "\r\n"). */
  static final class LineReader {
    private final InputStream in;
    private final byte[] buffer = new byte[1 << 16];
    private final CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
        .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
    private final ByteArrayOutputStream line = new ByteArrayOutputStream();
    private int position;
    private int limit;
    private int number;

    LineReader(InputStream in) {
      this.in = in;
    }

    int number() {
      return number;
    }

    /** The next line, or null at the end; a line over MAX_LINE_BYTES or not UTF-8 is an error naming it. */
    String next() throws IOException {
      line.reset();
      while (true) {
        if (position == limit) {
          limit = Math.max(0, in.read(buffer));
          position = 0;
          if (limit == 0) {
            return line.size() == 0 ? null : decode(false);
          }
        }
        int start = position;
        while (position < limit && buffer[position] != '\n') {
          position++;
        }
        line.write(buffer, start, position - start);
        if (line.size() > MAX_LINE_BYTES) {
          throw new IOException("stdin line " + (number + 1) + " is longer than " + MAX_LINE_BYTES + " bytes");
        }
        if (position < limit) {
          position++;
          return decode(true);
        }
      }
    }

    /** The line read, without the '\r' of a "\r\n" terminator when {@code terminated}. */
    private String decode(boolean terminated) throws IOException {
      number++;
      byte[] bytes = line.toByteArray();  // the one copy of the line's bytes
      boolean crlf = terminated && bytes.length > 0 && bytes[bytes.length - 1] == '\r';
      int length = crlf ? bytes.length - 1 : bytes.length;
      try {
        return decoder.decode(ByteBuffer.wrap(bytes, 0, length)).toString();
      } catch (CharacterCodingException e) {
        throw new IOException("stdin line " + number + " is not UTF-8");
      }
    }
  }
}

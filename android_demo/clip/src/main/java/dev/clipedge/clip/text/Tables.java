package dev.clipedge.clip.text;

import dev.clipedge.clip.Contract;
import dev.clipedge.clip.Json;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/** Typed access to text_cleaning.json (see docs/tokenizer.md); every error names the file and the key. */
final class Tables {
  private final String file;
  private final Map<?, ?> root;

  private Tables(String file, Map<?, ?> root) {
    this.file = file;
    this.root = root;
  }

  static Tables parse(InputStream in, String file) throws IOException {
    Object value;
    try {
      value = Json.parse(readUtf8(in, 64 << 20, file));
    } catch (Json.JsonException e) {
      throw new IOException(file + ": " + e.getMessage());
    }
    if (!(value instanceof Map)) {
      throw new IOException(file + ": not a JSON object");
    }
    Tables tables = new Tables(file, (Map<?, ?>) value);
    Object format = tables.root.get("format");
    if (!(format instanceof Long) || (Long) format != Contract.TEXT_CLEANING_FORMAT) {
      throw new IOException(file + ": format is " + format + ", this reader knows format "
          + Contract.TEXT_CLEANING_FORMAT);
    }
    return tables;
  }

  /** The whole stream as UTF-8, refusing more than {@code limit} bytes and malformed UTF-8. */
  static String readUtf8(InputStream in, int limit, String file) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    byte[] buffer = new byte[1 << 16];
    for (int n; (n = in.read(buffer)) > 0; ) {
      if (bytes.size() + n > limit) {
        throw new IOException(file + ": larger than " + limit + " bytes");
      }
      bytes.write(buffer, 0, n);
    }
    try {
      return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes.toByteArray())).toString();
    } catch (CharacterCodingException e) {
      throw new IOException(file + ": not UTF-8 text");
    }
  }

  String file() {
    return file;
  }

  Tables section(String key) {
    return new Tables(file + " " + key, (Map<?, ?>) get(key, Map.class));
  }

  String string(String key) {
    return get(key, String.class);
  }

  long number(String key) {
    return get(key, Long.class);
  }

  boolean bool(String key) {
    return get(key, Boolean.class);
  }

  CodePointSet codePoints(String key) {
    return CodePointSet.parse(string(key), file + " " + key);
  }

  Pattern pattern(String key, int flags) {
    try {
      return Pattern.compile(string(key), flags);
    } catch (PatternSyntaxException e) {
      throw new IllegalArgumentException(file + " " + key + ": not a valid pattern: " + e.getDescription());
    }
  }

  /** A JSON object of strings to strings. */
  Map<String, String> strings(String key) {
    Map<?, ?> map = get(key, Map.class);
    Map<String, String> out = new HashMap<>(map.size() * 2);
    for (Map.Entry<?, ?> entry : map.entrySet()) {
      if (!(entry.getValue() instanceof String)) {
        throw new IllegalArgumentException(file + " " + key + ": value of '" + entry.getKey() + "' is not a string");
      }
      out.put((String) entry.getKey(), (String) entry.getValue());
    }
    return out;
  }

  /** A JSON object of strings to integers. */
  Map<String, Long> ids(String key) {
    Map<?, ?> map = get(key, Map.class);
    Map<String, Long> out = new HashMap<>();
    for (Map.Entry<?, ?> entry : map.entrySet()) {
      if (!(entry.getValue() instanceof Long)) {
        throw new IllegalArgumentException(file + " " + key + ": value of '" + entry.getKey() + "' is not an integer");
      }
      out.put((String) entry.getKey(), (Long) entry.getValue());
    }
    return out;
  }

  /** A JSON object of single code points to strings, keyed by code point. */
  Map<Integer, String> charMap(String key) {
    Map<Integer, String> out = new HashMap<>();
    for (Map.Entry<String, String> entry : strings(key).entrySet()) {
      String from = entry.getKey();
      if (from.isEmpty() || from.codePointCount(0, from.length()) != 1) {
        throw new IllegalArgumentException(file + " " + key + ": key '" + from + "' is not one character");
      }
      out.put(from.codePointAt(0), entry.getValue());
    }
    return out;
  }

  List<?> list(String key) {
    return get(key, List.class);
  }

  Tables item(String key, int index) {
    Object value = list(key).get(index);
    if (!(value instanceof Map)) {
      throw new IllegalArgumentException(file + " " + key + "[" + index + "]: not an object");
    }
    return new Tables(file + " " + key + "[" + index + "]", (Map<?, ?>) value);
  }

  private <T> T get(String key, Class<T> type) {
    Object value = root.get(key);
    if (!type.isInstance(value)) {
      throw new IllegalArgumentException(file + ": " + key + " is " + (value == null ? "missing"
          : "a " + value.getClass().getSimpleName() + ", expected a " + type.getSimpleName()));
    }
    return type.cast(value);
  }
}

package dev.clipedge.clip.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Typed access to text_cleaning.json. The committed copy is what an export writes (make_tokenizer_test_resources.py
 * from clip_edge.text_cleaning_tables); its values are checked here against the JDK's Unicode tables and the HTML5
 * standard, so that a reader that decoded escapes, surrogate pairs or nesting wrongly fails here rather than in a
 * changed token.
 */
class TablesTest {
  private static Tables tables;

  @BeforeAll
  static void load() throws IOException {
    try (InputStream in = TestFiles.resource("text_cleaning.json")) {
      tables = Tables.parse(in, "text_cleaning.json");
    }
  }

  private static Tables parse(String json) throws IOException {
    return Tables.parse(new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8)), "t.json");
  }

  @Test
  void compositionsAreTheJdksNfc() {
    // nfc.compositions: a canonical pair -> its primary composite. The JDK's Normalizer must agree on each.
    Map<String, String> compositions = tables.section("nfc").strings("compositions");
    assertTrue(compositions.size() > 900, compositions.size() + " compositions");
    List<String> wrong = new ArrayList<>();
    for (Map.Entry<String, String> entry : compositions.entrySet()) {
      String pair = entry.getKey();
      if (pair.codePointCount(0, pair.length()) != 2
          || !Normalizer.normalize(pair, Normalizer.Form.NFC).equals(entry.getValue())) {
        wrong.add(pair + " -> " + entry.getValue());
      }
    }
    assertEquals(List.of(), wrong);
  }

  @Test
  void decompositionsAreTheJdksCanonicalDecompositions() {
    // nfc.decompositions, keyed by code point (charMap): one step of canonical decomposition. Applied until
    // nothing changes, it must give the JDK's NFD of the character (fully decomposed, before reordering, which
    // for a single character's decomposition is already in canonical order). The tables' Unicode is newer than
    // this JDK's: characters the JDK has unassigned (it leaves them as they are) are not compared.
    Map<Integer, String> decompositions = tables.section("nfc").charMap("decompositions");
    assertTrue(decompositions.size() > 2000, decompositions.size() + " decompositions");
    List<String> wrong = new ArrayList<>();
    for (Map.Entry<Integer, String> entry : decompositions.entrySet()) {
      String character = Character.toString(entry.getKey());
      String full = entry.getValue();
      for (int guard = 0; guard < 8; guard++) {
        StringBuilder next = new StringBuilder();
        full.codePoints().forEach(c -> next.append(decompositions.getOrDefault(c, Character.toString(c))));
        full = next.toString();
      }
      if (Character.getType(entry.getKey()) != Character.UNASSIGNED
          && !full.equals(Normalizer.normalize(character, Normalizer.Form.NFD))) {
        wrong.add(Integer.toHexString(entry.getKey()) + " -> " + full);
      }
    }
    assertEquals(List.of(), wrong.subList(0, Math.min(10, wrong.size())), wrong.size() + " wrong");
  }

  @Test
  void htmlEntitiesAreTheHtml5Standards() {
    // Values from the HTML Living Standard's named character references: ASCII, Latin-1, two code points, a
    // ligature, one above the BMP (a surrogate pair in Java), and the legacy form without ";".
    Map<String, String> entities = tables.section("html").strings("entities");
    assertEquals("&", entities.get("amp;"));
    assertEquals("&", entities.get("amp"));
    assertEquals("\u00e9", entities.get("eacute;"));
    assertEquals("\u2242\u0338", entities.get("NotEqualTilde;"));
    assertEquals("fj", entities.get("fjlig;"));
    assertEquals(new String(Character.toChars(0x1d504)), entities.get("Afr;"));
    assertEquals("\u00a0", entities.get("nbsp;"));
    assertEquals(2231, entities.size()); // the standard's 2,231 names (html.entities.html5)
  }

  @Test
  void lowercaseMapIsTheJdksWhereUnicodeAgrees() {
    // lowercase.map: Python's str.lower per character. The JDK's toLowerCase(Locale.ROOT) of the character alone
    // (no final-sigma context) is the same mapping for every character the JDK's Unicode knows.
    Map<Integer, String> map = tables.section("lowercase").charMap("map");
    List<String> wrong = new ArrayList<>();
    for (Map.Entry<Integer, String> entry : map.entrySet()) {
      int c = entry.getKey();
      if (c != 0 && Character.getType(c) != Character.UNASSIGNED
          && !Character.toString(c).toLowerCase(java.util.Locale.ROOT).equals(entry.getValue())) {
        wrong.add(Integer.toHexString(c) + " -> " + entry.getValue());
      }
    }
    assertEquals(List.of(), wrong);
    assertEquals("i\u0307", map.get(0x130)); // İ: two code points, as Python lowercases it
    assertEquals("", map.get(0)); // NUL is deleted (the graph cuts strings there)
  }

  @Test
  void formatAndEncodingAreChecked() {
    IOException format = assertThrows(IOException.class, () -> parse("{\"format\": 2}"));
    assertEquals("t.json: format is 2, this reader knows format 1", format.getMessage());
    IOException missing = assertThrows(IOException.class, () -> parse("{}"));
    assertEquals("t.json: format is null, this reader knows format 1", missing.getMessage());
    IOException array = assertThrows(IOException.class, () -> parse("[1]"));
    assertEquals("t.json: not a JSON object", array.getMessage());
    IOException json = assertThrows(IOException.class, () -> parse("{\"format\": 1"));
    assertTrue(json.getMessage().startsWith("t.json: "), json.getMessage());
    byte[] latin1 = "{\"format\": 1, \"x\": \"caf\u00e9\"}".getBytes(StandardCharsets.ISO_8859_1);
    IOException notUtf8 = assertThrows(IOException.class,
        () -> Tables.parse(new ByteArrayInputStream(latin1), "t.json"));
    assertEquals("t.json: not UTF-8 text", notUtf8.getMessage());
    IOException large = assertThrows(IOException.class,
        () -> Tables.readUtf8(new ByteArrayInputStream(new byte[101]), 100, "t.json"));
    assertEquals("t.json: larger than 100 bytes", large.getMessage());
  }

  @Test
  void wrongTypesNameTheFileAndKey() throws IOException {
    Tables t = parse("{\"format\": 1, \"s\": \"x\", \"n\": 3, \"section\": {\"m\": {\"a\": 1}, \"c\": {\"ab\": \"x\"},"
        + " \"l\": [1, {\"k\": true}]}}");
    assertEquals("x", t.string("s"));
    assertEquals(3, t.number("n"));
    assertEquals("t.json: s is a String, expected a Long",
        assertThrows(IllegalArgumentException.class, () -> t.number("s")).getMessage());
    assertEquals("t.json: gone is missing",
        assertThrows(IllegalArgumentException.class, () -> t.string("gone")).getMessage());
    Tables section = t.section("section");
    assertEquals("t.json section m: value of 'a' is not a string",
        assertThrows(IllegalArgumentException.class, () -> section.strings("m")).getMessage());
    assertEquals("t.json section c: key 'ab' is not one character",
        assertThrows(IllegalArgumentException.class, () -> section.charMap("c")).getMessage());
    assertEquals("t.json section l[0]: not an object",
        assertThrows(IllegalArgumentException.class, () -> section.item("l", 0)).getMessage());
    assertEquals(true, section.item("l", 1).bool("k"));
    assertEquals("t.json section l[1]: k2 is missing",
        assertThrows(IllegalArgumentException.class, () -> section.item("l", 1).string("k2")).getMessage());
    IllegalArgumentException pattern = assertThrows(IllegalArgumentException.class,
        () -> parse("{\"format\": 1, \"p\": \"[a-\"}").pattern("p", 0));
    assertTrue(pattern.getMessage().startsWith("t.json p: not a valid pattern: "), pattern.getMessage());
  }
}

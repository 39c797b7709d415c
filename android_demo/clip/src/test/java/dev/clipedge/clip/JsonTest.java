package dev.clipedge.clip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonTest {
  @Test
  void parsesNestedValues() {
    Object value = Json.parse(" {\"a\": [1, -2.5e1, true, null, \"x\\u00e9\\n\"], \"b\": {}} ");
    Map<?, ?> map = (Map<?, ?>) value;
    List<?> a = (List<?>) map.get("a");
    assertEquals(1L, a.get(0));
    assertEquals(-25.0, a.get(1));
    assertEquals(Boolean.TRUE, a.get(2));
    assertEquals(null, a.get(3));
    assertEquals("x\u00e9\n", a.get(4));
    assertTrue(((Map<?, ?>) map.get("b")).isEmpty());
  }

  @Test
  void surrogatePairsFromEscapesJoin() {
    assertEquals("\ud83d\ude00", Json.parse("\"\\ud83d\\ude00\""));
  }

  @Test
  void quoteRoundTrips() {
    String text = "a \"quoted\" \\ line\nwith\ttab, \u0001 and \u00e9\ud83d\ude00";
    assertEquals(text, Json.parse(Json.quote(text)));
  }

  @Test
  void quoteEscapesWhatJsonRequires() {
    // Written by hand from RFC 8259 section 7: '"', '\\' and U+0000-U+001F must be escaped (\\uXXXX or a short
    // form); DEL, U+2028 and characters above the BMP may be written as they are. classify prints labels this way.
    assertEquals("\"\\u0000\\u001f\\u0008\\n\\r\\t\\\"\\\\/\u007f\u2028\ud83d\ude00\"",
        Json.quote("\u0000\u001f\b\n\r\t\"\\/\u007f\u2028\ud83d\ude00"));
    String controls = "";
    for (char c = 0; c < 0x20; c++) {
      controls += c;
    }
    assertEquals(controls, Json.parse(Json.quote(controls)));
  }

  @Test
  void malformedInputNamesTheOffset() {
    for (String bad : new String[] {"", "{", "[1,]", "{\"a\" 1}", "\"abc", "tru", "1 2", "\"\\x\"", "01x"}) {
      Json.JsonException e = assertThrows(Json.JsonException.class, () -> Json.parse(bad), bad);
      assertTrue(e.getMessage().contains("offset"), e.getMessage());
    }
  }

  @Test
  void deepNestingIsRefusedNotAStackOverflow() {
    String deep = "[".repeat(100_000);
    Json.JsonException e = assertThrows(Json.JsonException.class, () -> Json.parse(deep));
    assertTrue(e.getMessage().contains("nesting"), e.getMessage());
  }
}

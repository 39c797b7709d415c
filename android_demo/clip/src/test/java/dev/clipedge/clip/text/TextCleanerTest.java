package dev.clipedge.clip.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class TextCleanerTest {
  private static TextCleaner cleaner;

  @BeforeAll
  static void load() throws IOException {
    cleaner = TextCleaner.load(TestFiles.resource("text_cleaning.json"));
  }

  @Test
  void cleansLikeOpenAisReference() throws IOException {
    // Expected texts from open_clip's own cleaning function (ftfy + html.unescape + whitespace + lower).
    List<Map<?, ?>> cases = TestFiles.jsonLines("text_cleaner_golden.jsonl");
    assertTrue(cases.size() >= 15);
    List<String> wrong = new ArrayList<>();
    for (Map<?, ?> row : cases) {
      String text = (String) row.get("text");
      String got = cleaner.clean(text);
      if (!got.equals(row.get("cleaned"))) {
        wrong.add(text + " -> " + got + " (expected " + row.get("cleaned") + ")");
      }
    }
    assertEquals(List.of(), wrong);
  }

  @Test
  void repairsMojibake() {
    assertEquals("só été", cleaner.clean("sÃ³ Ã©tÃ©"));
    assertEquals("\"quoted\"", cleaner.clean("â€œquotedâ€\u009d"));
    assertEquals("é", cleaner.clean("Ã\u0083Â©"));
    assertEquals("привет мир", cleaner.clean("Ð\u009fÑ\u0080Ð¸Ð²ÐµÑ\u0082 Ð¼Ð¸Ñ\u0080"));
    // Each line on its own; Latin-1 letters that spell no UTF-8 stay.
    assertEquals("é ligne café", cleaner.clean("Ã©\nligne café"));
    assertEquals("ãx naïve", cleaner.clean("Ãx naïve"));
  }

  @Test
  void unescapesHtmlEntities() {
    assertEquals("fish & chips <3 \"q\" é é", cleaner.clean("Fish &amp; chips &lt;3 &quot;q&quot; &eacute; &EACUTE;"));
    // ftfy once, then html.unescape twice: three levels of &amp; come down to one character.
    assertEquals("<", cleaner.clean("&amp;amp;lt;"));
    assertEquals("&foo – \ufffd \ufffd", cleaner.clean("&ampfoo &#150; &#0; &#x110000;"));
    assertEquals("&unknown;", cleaner.clean("&unknown;"));
  }

  @Test
  void collapsesWhitespace() {
    assertEquals("a b c d", cleaner.clean("  a\u00a0\u2003b\t\tc\r\n\u2028d  "));
    assertEquals("", cleaner.clean("\t\n\r \u3000"));
    assertEquals("", cleaner.clean(""));
  }

  @Test
  void lowercasesLikePython() {
    assertEquals("οδυσσευς σας", cleaner.clean("ΟΔΥΣΣΕΥΣ ΣΑΣ"));
    assertEquals("i\u0307stanbul ß", cleaner.clean("İstanbul ẞ"));
    // Unicode 14 capitals (newer than Java 17's tables) lowercase as in Python 3.11.
    assertEquals("\u2c5f\ua7c1", cleaner.clean("\u2c2f\ua7c0"));
  }

  @Test
  void removesControlsAndComposes() {
    assertEquals("bell escred", cleaner.clean("bell\u0007 esc\u001b[31mred"));
    assertEquals("café", cleaner.clean("cafe\u0301"));
    assertEquals("financial full", cleaner.clean("ﬁnancial ＦＵＬＬ"));
  }

  @Test
  void linesArriveOneAtATime() {
    List<String> lines = new ArrayList<>();
    cleaner.cleanLines("One\nTWO\nthree", line -> {
      lines.add(line);
      return lines.size() < 2;
    });
    assertEquals(List.of("one\n", "two\n"), lines);
  }

  @Test
  void malformedTablesNameTheProblem() throws IOException {
    String tables = TestFiles.resourceText("text_cleaning.json");
    IOException missing = assertThrows(IOException.class,
        () -> TextCleaner.load(TestFiles.stream(tables.replace("\"whitespace\":", "\"spaces\":"))));
    assertTrue(missing.getMessage().contains("whitespace is missing"), missing.getMessage());
    IOException format = assertThrows(IOException.class,
        () -> TextCleaner.load(TestFiles.stream(tables.replace("\"format\":1", "\"format\":99"))));
    assertTrue(format.getMessage().contains("format is 99"), format.getMessage());
    IOException json = assertThrows(IOException.class, () -> TextCleaner.load(TestFiles.stream("{\"format\": 1,")));
    assertTrue(json.getMessage().startsWith("text_cleaning.json: invalid JSON"), json.getMessage());
    IOException pattern = assertThrows(IOException.class,
        () -> TextCleaner.load(TestFiles.stream(tables.replace("\"entity\":\"", "\"entity\":\"(["))));
    assertTrue(pattern.getMessage().contains("ftfy entity: not a valid pattern"), pattern.getMessage());
  }
}

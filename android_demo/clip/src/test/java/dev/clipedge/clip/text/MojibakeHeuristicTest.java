package dev.clipedge.clip.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * ftfy's "looks like mojibake" test as text_cleaning.json's step sequences: it decides whether the cleaner tries
 * to repair a line at all. A miss leaves "cafÃ©" to be tokenized as garbage; a false alarm risks "repairing"
 * clean text. The mojibake here is made by the JDK's own charsets (UTF-8 bytes read as Latin-1 or Windows-1252),
 * not by the code under test.
 */
class MojibakeHeuristicTest {
  private static final Charset CP1252 = Charset.forName("windows-1252");
  /** Clean text in several scripts, with the accents and punctuation that mojibake is made of. */
  private static final List<String> CLEAN = List.of("a photo of a cat", "café au lait", "naïve façade",
      "Ærøskøbing", "Straße über Öl", "niño año señor", "São João", "“curly quotes” and it’s — a dash…",
      "€5 or £4 or ¥3", "Привет, мир", "Γειά σου κόσμε", "東京の写真", "서울", "emoji 😀 ok", "ÀÉÎÕÜ");

  private static MojibakeHeuristic heuristic;

  @BeforeAll
  static void load() throws IOException {
    try (InputStream in = TestFiles.resource("text_cleaning.json")) {
      heuristic = new MojibakeHeuristic(Tables.parse(in, "text_cleaning.json").section("mojibake"));
    }
  }

  /** {@code text} encoded as UTF-8 and decoded as {@code charset}: what a mislabelled file shows. */
  private static String misread(String text, Charset charset) {
    return new String(text.getBytes(StandardCharsets.UTF_8), charset);
  }

  @Test
  void cleanTextIsNotBad() {
    List<String> flagged = new ArrayList<>();
    for (String text : CLEAN) {
      if (heuristic.isBad(text)) {
        flagged.add(text);
      }
    }
    assertEquals(List.of(), flagged);
  }

  @Test
  void utf8ReadAsWindows1252IsBad() {
    List<String> missed = new ArrayList<>();
    for (String text : CLEAN) {
      String mojibake = misread(text, CP1252);
      if (!text.equals(mojibake) && !heuristic.isBad(mojibake)) {
        missed.add(mojibake);
      }
    }
    assertEquals(List.of(), missed);
    assertTrue(heuristic.isBad(misread("doesn’t", CP1252)), misread("doesn’t", CP1252)); // doesnâ€™t
  }

  @Test
  void utf8ReadAsLatin1IsBad() {
    // Latin-1 maps bytes 80-9F to C1 controls, which ftfy's first sequence catches on their own.
    List<String> missed = new ArrayList<>();
    for (String text : CLEAN) {
      String mojibake = misread(text, StandardCharsets.ISO_8859_1);
      if (!text.equals(mojibake) && !heuristic.isBad(mojibake)) {
        missed.add(mojibake);
      }
    }
    assertEquals(List.of(), missed);
  }

  @Test
  void mojibakeIsFoundAnywhereInTheLine() {
    String bad = misread("é", CP1252); // Ã©
    assertEquals("\u00c3\u00a9", bad);
    assertTrue(heuristic.isBad(bad));
    assertTrue(heuristic.isBad("a long clean start " + bad));
    assertTrue(heuristic.isBad(bad + " then a long clean end"));
    assertTrue(heuristic.isBad("clean " + bad + " clean"));
    // Either half alone is a plain capital letter or sign (ftfy.badness.is_bad agrees on these three)...
    assertFalse(heuristic.isBad("S\u00c3O PAULO"));
    assertFalse(heuristic.isBad("\u00a9 2024"));
    // ...but "Ã" before a space is what "à" becomes when its second byte, A0, was turned into a space.
    assertTrue(heuristic.isBad("x\u00c3 y"));
    assertFalse(heuristic.isBad(""));
  }

  @Test
  void aSequenceWithoutStepsIsRefused() {
    String json = "{\"format\": 1, \"mojibake\": {\"sequences\": [{\"anchored\": false, \"steps\": []}]}}";
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new MojibakeHeuristic(
        Tables.parse(new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8)), "t.json").section("mojibake")));
    assertEquals("t.json mojibake sequences[0]: no steps", e.getMessage());
  }
}

package dev.clipedge.clip.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Nfc (from text_cleaning.json's tables) against the JDK's java.text.Normalizer, an independent implementation,
 * on every character Java 17 knows (Unicode 13): Unicode's stability policy keeps the NFC of assigned characters
 * fixed across versions, so the two must agree there. Characters assigned since are why Nfc exists at all and
 * are left to the cross-check against the SavedModel (tests/test_jvm_tokenizer.py).
 */
class NfcTest {
  private static Nfc nfc;
  private static int[] known;
  private static int[] marks;

  @BeforeAll
  static void load() throws IOException {
    try (InputStream in = TestFiles.resource("text_cleaning.json")) {
      nfc = new Nfc(Tables.parse(in, "text_cleaning.json").section("nfc"));
    }
    List<Integer> all = new ArrayList<>();
    List<Integer> combining = new ArrayList<>();
    for (int c = 0; c <= Character.MAX_CODE_POINT; c++) {
      if (Character.isDefined(c) && Character.getType(c) != Character.SURROGATE) {
        all.add(c);
        if (Character.getType(c) == Character.NON_SPACING_MARK) {
          combining.add(c);
        }
      }
    }
    known = all.stream().mapToInt(Integer::intValue).toArray();
    marks = combining.stream().mapToInt(Integer::intValue).toArray();
  }

  private static void assertLikeNormalizer(String text) {
    assertEquals(Normalizer.normalize(text, Normalizer.Form.NFC), nfc.normalize(text),
        () -> "NFC of " + text.codePoints().mapToObj(Integer::toHexString).toList());
  }

  @Test
  void everyKnownCharacterAloneAndBeforeAMark() {
    for (int c : known) {
      String alone = new String(Character.toChars(c));
      assertLikeNormalizer(alone);
      assertLikeNormalizer(alone + "\u0301\u0323");  // two marks of other classes: reordered, maybe composed
    }
    assertTrue(known.length > 140_000, "characters known to the JDK: " + known.length);
  }

  @Test
  void randomRunsOfLettersMarksAndHangulJamo() {
    Random random = new Random(20261206);
    int[] jamo = {0x1100, 0x1112, 0x1161, 0x1175, 0x11A8, 0x11C2, 0xAC00, 0xD7A3};
    for (int i = 0; i < 20_000; i++) {
      StringBuilder text = new StringBuilder();
      for (int n = random.nextInt(8) + 1; n > 0; n--) {
        int draw = random.nextInt(10);
        int c = draw < 4 ? marks[random.nextInt(marks.length)]
            : draw < 6 ? jamo[random.nextInt(jamo.length)] + (random.nextBoolean() ? random.nextInt(3) : 0)
            : draw < 8 ? "aeiouAEIOUnNsScCgG".charAt(random.nextInt(18)) : known[random.nextInt(known.length)];
        if (Character.isDefined(c)) {
          text.appendCodePoint(c);
        }
      }
      assertLikeNormalizer(text.toString());
    }
  }
}

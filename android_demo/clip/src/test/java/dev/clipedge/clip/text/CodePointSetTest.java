package dev.clipedge.clip.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntPredicate;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The range notation of text_cleaning.json and the two lookups behind it (a BMP bit table, a binary search above
 * it). A wrong bit or an off-by-one range end would tokenize a character as the wrong class (a space inside a
 * word, a letter split from its word) and show only as a different embedding.
 */
class CodePointSetTest {
  private static Tables tables;

  @BeforeAll
  static void load() throws IOException {
    try (InputStream in = TestFiles.resource("text_cleaning.json")) {
      tables = Tables.parse(in, "text_cleaning.json");
    }
  }

  /** Every code point in [0, limit) where the set and {@code expected} disagree. */
  private static List<String> disagreements(CodePointSet set, IntPredicate expected, int limit) {
    List<String> wrong = new ArrayList<>();
    for (int c = 0; c < limit; c++) {
      if (set.contains(c) != expected.test(c)) {
        wrong.add(Integer.toHexString(c) + (set.contains(c) ? " in set" : " missing"));
      }
    }
    return wrong;
  }

  @Test
  void singlesAndRangesAreInclusive() {
    CodePointSet set = CodePointSet.parse("9-d,20,3f-40,85", "t");
    // Independent of the parser: the members spelt out by hand.
    List<Integer> members = List.of(0x9, 0xa, 0xb, 0xc, 0xd, 0x20, 0x85, 0x3f, 0x40);
    assertEquals(List.of(), disagreements(set, members::contains, 0x10000));
    assertFalse(set.contains(-1), "no character");
    assertFalse(CodePointSet.parse("", "empty").contains(0));
  }

  @Test
  void rangesAcrossAndAboveTheBmpUseTheSearch() {
    // The bit table ends at U+FFFF: a range that straddles it must hold on both sides, and the search must find
    // the first and last code point of every range and nothing one past them.
    CodePointSet set = CodePointSet.parse("41,fff0-10010,1f600,1f680-1f6ff,10fffe-10ffff", "t");
    for (int c : new int[] {0x41, 0xfff0, 0xffff, 0x10000, 0x10010, 0x1f600, 0x1f680, 0x1f6c0, 0x1f6ff, 0x10fffe,
        0x10ffff}) {
      assertTrue(set.contains(c), Integer.toHexString(c));
    }
    for (int c : new int[] {0x40, 0x42, 0xffef, 0x10011, 0x1f5ff, 0x1f601, 0x1f67f, 0x1f700, 0x10fffd}) {
      assertFalse(set.contains(c), Integer.toHexString(c));
    }
  }

  @Test
  void containsAnyReadsCodePointsNotChars() {
    CodePointSet emoji = CodePointSet.parse("1f600", "t");
    assertTrue(emoji.containsAny("a \ud83d\ude00"));
    assertFalse(emoji.containsAny("a \ud83d\ude01"));
    assertFalse(emoji.containsAny(""));
    // A high surrogate's value as a member: a proper pair is one code point (U+1F600), not its halves; a lone
    // surrogate is itself.
    CodePointSet high = CodePointSet.parse("d83d", "t");
    assertFalse(high.containsAny("\ud83d\ude00"));
    assertTrue(high.containsAny("x\ud83d"));
  }

  @Test
  void malformedRangesNameTheTable() {
    String[][] cases = {
        {"20,10", "range '10' is not ascending"},
        {"10-20,15", "range '15' is not ascending"},
        {"10-20,20", "range '20' is not ascending"},
        {"30-20", "range '30-20' is not ascending"},
        {"zz", "'zz' is not a hex code point"},
        {"110000", "'110000' is not a hex code point"},
        {"10,", "'' is not a hex code point"},
        {"-5", "'' is not a hex code point"},
    };
    for (String[] c : cases) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> CodePointSet.parse(c[0], "tables letters"), c[0]);
      assertEquals("tables letters: " + c[1], e.getMessage());
    }
  }

  @Test
  void whitespaceIsPythonsIsspace() {
    // str.isspace: general category Zs or bidirectional class WS, B or S (Python's definition), here from the
    // JDK's own Unicode tables. Whitespace has not changed between the JDK's Unicode and Python's.
    IntPredicate isspace = c -> Character.getType(c) == Character.SPACE_SEPARATOR
        || Character.getDirectionality(c) == Character.DIRECTIONALITY_WHITESPACE
        || Character.getDirectionality(c) == Character.DIRECTIONALITY_PARAGRAPH_SEPARATOR
        || Character.getDirectionality(c) == Character.DIRECTIONALITY_SEGMENT_SEPARATOR;
    assertEquals(List.of(), disagreements(tables.codePoints("whitespace"), isspace, Character.MAX_CODE_POINT + 1));
  }

  @Test
  void lettersAndNumbersAreUnicodeCategoriesWhereTheJdkKnowsTheCharacter() {
    // Pre-tokenisation's \p{L} and \p{N}. The tables come from a newer Unicode than this JDK's, so a code point
    // the JDK has unassigned may be in them; every character the JDK knows must agree with its category.
    Tables pre = tables.section("pre_tokenization");
    IntPredicate letter = c -> Character.isLetter(c);
    IntPredicate number = c -> {
      int type = Character.getType(c);
      return type == Character.DECIMAL_DIGIT_NUMBER || type == Character.LETTER_NUMBER
          || type == Character.OTHER_NUMBER;
    };
    IntPredicate known = c -> Character.getType(c) != Character.UNASSIGNED;
    CodePointSet letters = pre.codePoints("letters");
    CodePointSet numbers = pre.codePoints("numbers");
    List<String> wrong = new ArrayList<>();
    for (int c = 0; c <= Character.MAX_CODE_POINT; c++) {
      if (known.test(c) && letters.contains(c) != letter.test(c)) {
        wrong.add("letter " + Integer.toHexString(c));
      }
      if (known.test(c) && numbers.contains(c) != number.test(c)) {
        wrong.add("number " + Integer.toHexString(c));
      }
    }
    assertEquals(List.of(), wrong.subList(0, Math.min(20, wrong.size())), wrong.size() + " disagreements");
  }
}

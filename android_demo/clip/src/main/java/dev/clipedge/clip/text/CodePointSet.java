package dev.clipedge.clip.text;

import java.util.Arrays;

/**
 * An immutable set of code points read from text_cleaning.json's range notation ({@code "9-d,20,85"}: hex code
 * points and inclusive ranges, ascending). The Basic Multilingual Plane is a bit table (one lookup per
 * character on the hot path); supplementary code points are a sorted range list.
 */
final class CodePointSet {
  private final long[] bmp = new long[1024];
  private final int[] starts;
  private final int[] ends;

  private CodePointSet(int[] starts, int[] ends) {
    this.starts = starts;
    this.ends = ends;
  }

  /** Parses {@code ranges}; {@code what} names the table in error messages. */
  static CodePointSet parse(String ranges, String what) {
    if (ranges.isEmpty()) {
      return new CodePointSet(new int[0], new int[0]);
    }
    String[] parts = ranges.split(",", -1);
    int[] starts = new int[parts.length];
    int[] ends = new int[parts.length];
    int count = 0;
    int previous = -1;
    for (String part : parts) {
      int dash = part.indexOf('-');
      int low = hex(dash < 0 ? part : part.substring(0, dash), what);
      int high = dash < 0 ? low : hex(part.substring(dash + 1), what);
      if (low <= previous || high < low) {
        throw new IllegalArgumentException(what + ": range '" + part + "' is not ascending");
      }
      previous = high;
      starts[count] = low;
      ends[count] = high;
      count++;
    }
    CodePointSet set = new CodePointSet(Arrays.copyOf(starts, count), Arrays.copyOf(ends, count));
    for (int i = 0; i < count; i++) {
      for (int c = starts[i]; c <= Math.min(ends[i], 0xFFFF); c++) {
        set.bmp[c >>> 6] |= 1L << c;
      }
    }
    return set;
  }

  static int hex(String digits, String what) {
    try {
      int value = Integer.parseInt(digits, 16);
      if (value < 0 || value > Character.MAX_CODE_POINT) {
        throw new NumberFormatException();
      }
      return value;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(what + ": '" + digits + "' is not a hex code point");
    }
  }

  /** Whether {@code c} is in the set (a negative value, for "no character", is not). */
  boolean contains(int c) {
    if (c < 0) {
      return false;
    }
    if (c <= 0xFFFF) {
      return (bmp[c >>> 6] & (1L << c)) != 0;
    }
    int i = Arrays.binarySearch(starts, c);
    if (i >= 0) {
      return true;
    }
    int before = -i - 2;
    return before >= 0 && c <= ends[before];
  }

  /** Whether any code point of {@code text} is in the set. */
  boolean containsAny(CharSequence text) {
    for (int i = 0; i < text.length(); ) {
      int c = Character.codePointAt(text, i);
      if (contains(c)) {
        return true;
      }
      i += Character.charCount(c);
    }
    return false;
  }
}

package dev.clipedge.clip.text;

import java.util.BitSet;
import java.util.HashMap;
import java.util.Map;

/**
 * Unicode NFC from text_cleaning.json's tables (the graph's tensorflow-text NFD and NFC, Python's combining
 * classes) instead of java.text.Normalizer, whose Unicode 13 data (Java 17) differs from the graph's for
 * characters added since. Decomposition, canonical ordering and canonical composition as in UAX #15, Hangul
 * syllables by arithmetic.
 */
final class Nfc {
  private static final int S_BASE = 0xAC00;
  private static final int L_BASE = 0x1100;
  private static final int V_BASE = 0x1161;
  private static final int T_BASE = 0x11A7;
  private static final int L_COUNT = 19;
  private static final int V_COUNT = 21;
  private static final int T_COUNT = 28;
  private static final int N_COUNT = V_COUNT * T_COUNT;
  private static final int S_COUNT = L_COUNT * N_COUNT;

  private final Map<Integer, int[]> decompositions = new HashMap<>();
  private final byte[] bmpClasses = new byte[0x10000];
  private final Map<Integer, Integer> supplementaryClasses = new HashMap<>();
  private final Map<Long, Integer> compositions = new HashMap<>();
  /** Characters that can change under NFC or change their neighbours: text without any is already NFC. */
  private final BitSet mayChange = new BitSet(Character.MAX_CODE_POINT + 1);

  Nfc(Tables tables) {
    for (Map.Entry<Integer, String> entry : tables.charMap("decompositions").entrySet()) {
      decompositions.put(entry.getKey(), entry.getValue().codePoints().toArray());
    }
    for (String part : tables.string("combining_classes").split(",", -1)) {
      int colon = part.indexOf(':');
      int dash = part.indexOf('-');
      String what = tables.file() + " combining_classes";
      if (colon < 0) {
        throw new IllegalArgumentException(what + ": '" + part + "' has no ':class'");
      }
      int low = CodePointSet.hex(dash < 0 || dash > colon ? part.substring(0, colon) : part.substring(0, dash), what);
      int high = dash < 0 || dash > colon ? low : CodePointSet.hex(part.substring(dash + 1, colon), what);
      int value;
      try {
        value = Integer.parseInt(part.substring(colon + 1));
      } catch (NumberFormatException e) {
        value = -1;
      }
      if (value < 1 || value > 255 || high < low) {
        throw new IllegalArgumentException(what + ": '" + part + "' is not code points and a class 1..255");
      }
      for (int c = low; c <= high; c++) {
        if (c <= 0xFFFF) {
          bmpClasses[c] = (byte) value;
        } else {
          supplementaryClasses.put(c, value);
        }
        mayChange.set(c);
      }
    }
    BitSet composites = new BitSet();
    for (Map.Entry<String, String> entry : tables.strings("compositions").entrySet()) {
      int[] pair = entry.getKey().codePoints().toArray();
      int[] composite = entry.getValue().codePoints().toArray();
      if (pair.length != 2 || composite.length != 1) {
        throw new IllegalArgumentException(tables.file() + " compositions: '" + entry.getKey() + "' -> '"
            + entry.getValue() + "' is not a pair of characters and one character");
      }
      compositions.put(key(pair[0], pair[1]), composite[0]);
      composites.set(composite[0]);
      mayChange.set(pair[1]);
    }
    for (int c : decompositions.keySet()) {
      if (!composites.get(c)) {
        mayChange.set(c);
      }
    }
    mayChange.set(V_BASE, V_BASE + V_COUNT);
    mayChange.set(T_BASE + 1, T_BASE + T_COUNT);
  }

  private static long key(int first, int second) {
    return ((long) first << 21) | second;
  }

  int combiningClass(int c) {
    return c <= 0xFFFF ? bmpClasses[c] & 0xFF : supplementaryClasses.getOrDefault(c, 0);
  }

  String normalize(String text) {
    int i = 0;
    while (i < text.length()) {
      int c = text.codePointAt(i);
      if (mayChange.get(c)) {
        break;
      }
      i += Character.charCount(c);
    }
    if (i == text.length()) {
      return text;
    }
    int[] chars = decompose(text);
    reorder(chars);
    int length = compose(chars);
    return new String(chars, 0, length);
  }

  private int[] decompose(String text) {
    int[] out = new int[text.length() * 2];
    int n = 0;
    for (int i = 0; i < text.length(); ) {
      int c = text.codePointAt(i);
      i += Character.charCount(c);
      int[] parts = decompositions.get(c);
      int needed = n + (parts == null ? 3 : parts.length);
      if (needed > out.length) {
        out = java.util.Arrays.copyOf(out, Math.max(needed, out.length * 2));
      }
      if (parts != null) {
        for (int part : parts) {
          out[n++] = part;
        }
      } else if (c >= S_BASE && c < S_BASE + S_COUNT) {
        int s = c - S_BASE;
        out[n++] = L_BASE + s / N_COUNT;
        out[n++] = V_BASE + (s % N_COUNT) / T_COUNT;
        if (s % T_COUNT != 0) {
          out[n++] = T_BASE + s % T_COUNT;
        }
      } else {
        out[n++] = c;
      }
    }
    return java.util.Arrays.copyOf(out, n);
  }

  /** Stable sort of each run of non-starters by combining class (counting sort: runs can be long). */
  private void reorder(int[] chars) {
    int i = 0;
    while (i < chars.length) {
      if (combiningClass(chars[i]) == 0) {
        i++;
        continue;
      }
      int end = i;
      while (end < chars.length && combiningClass(chars[end]) != 0) {
        end++;
      }
      if (end - i > 1) {
        sortRun(chars, i, end);
      }
      i = end;
    }
  }

  private void sortRun(int[] chars, int start, int end) {
    int[] counts = new int[257];
    for (int k = start; k < end; k++) {
      counts[combiningClass(chars[k]) + 1]++;
    }
    for (int c = 1; c < counts.length; c++) {
      counts[c] += counts[c - 1];
    }
    int[] sorted = new int[end - start];
    for (int k = start; k < end; k++) {
      sorted[counts[combiningClass(chars[k])]++] = chars[k];
    }
    System.arraycopy(sorted, 0, chars, start, sorted.length);
  }

  /** Canonical composition in place; returns the new length. */
  private int compose(int[] chars) {
    int n = 0;
    int starter = -1;
    int lastClass = 0;
    for (int c : chars) {
      int cc = combiningClass(c);
      if (starter >= 0) {
        boolean adjacent = n - 1 == starter;
        // Not blocked: nothing between the starter and c, or the last thing between has a lower, non-zero class.
        if (adjacent || (lastClass != 0 && lastClass < cc)) {
          int composite = composite(chars[starter], c);
          if (composite >= 0) {
            chars[starter] = composite;
            continue;
          }
        }
      }
      if (cc == 0) {
        starter = n;
      }
      lastClass = cc;
      chars[n++] = c;
    }
    return n;
  }

  private int composite(int first, int second) {
    if (first >= L_BASE && first < L_BASE + L_COUNT && second >= V_BASE && second < V_BASE + V_COUNT) {
      return S_BASE + ((first - L_BASE) * V_COUNT + (second - V_BASE)) * T_COUNT;
    }
    if (first >= S_BASE && first < S_BASE + S_COUNT && (first - S_BASE) % T_COUNT == 0
        && second > T_BASE && second < T_BASE + T_COUNT) {
      return first + (second - T_BASE);
    }
    Integer composite = compositions.get(key(first, second));
    return composite == null ? -1 : composite;
  }
}

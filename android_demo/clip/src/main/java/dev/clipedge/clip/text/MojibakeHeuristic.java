package dev.clipedge.clip.text;

import java.util.List;

/**
 * ftfy's "looks like mojibake" heuristic (clip_edge.text_cleaning_tables.MOJIBAKE_SEQUENCES): a text is bad where any
 * of a few dozen short character sequences occurs. Matched step by step with bit-table classes rather than with
 * java.util.regex, whose large character classes are tested range by range (seconds on a long accented line).
 */
final class MojibakeHeuristic {
  private static final class Step {
    final CodePointSet chars;
    final boolean negate;
    final boolean optional;

    Step(CodePointSet chars, boolean negate, boolean optional) {
      this.chars = chars;
      this.negate = negate;
      this.optional = optional;
    }

    boolean matches(int c) {
      return chars.contains(c) != negate;
    }
  }

  private final boolean[] anchored;
  private final Step[][] sequences;

  MojibakeHeuristic(Tables tables) {
    int count = tables.list("sequences").size();
    anchored = new boolean[count];
    sequences = new Step[count][];
    for (int i = 0; i < count; i++) {
      Tables sequence = tables.item("sequences", i);
      anchored[i] = sequence.bool("anchored");
      List<?> steps = sequence.list("steps");
      sequences[i] = new Step[steps.size()];
      for (int k = 0; k < steps.size(); k++) {
        Tables step = sequence.item("steps", k);
        sequences[i][k] = new Step(step.codePoints("chars"), step.bool("negate"), step.bool("optional"));
      }
      if (steps.isEmpty()) {
        throw new IllegalArgumentException(sequence.file() + ": no steps");
      }
    }
  }

  /** Whether any sequence occurs in {@code text}. */
  boolean isBad(String text) {
    int[] chars = text.codePoints().toArray();
    for (int i = 0; i < chars.length; i++) {
      for (int s = 0; s < sequences.length; s++) {
        if ((!anchored[s] || i == 0) && matchesAt(sequences[s], 0, chars, i)) {
          return true;
        }
      }
    }
    return false;
  }

  private static boolean matchesAt(Step[] steps, int k, int[] chars, int i) {
    if (k == steps.length) {
      return true;
    }
    Step step = steps[k];
    if (i < chars.length && step.matches(chars[i]) && matchesAt(steps, k + 1, chars, i + 1)) {
      return true;
    }
    return step.optional && matchesAt(steps, k + 1, chars, i);
  }
}

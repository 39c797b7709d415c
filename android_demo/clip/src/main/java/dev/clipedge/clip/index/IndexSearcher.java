package dev.clipedge.clip.index;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Exact top-k search over every row of an {@link IndexFile}, ranked as docs/device_index.md defines: by the
 * float32 score (the row's cosine with the query, accumulated in double precision and rounded to float32), best
 * first, equal scores by id.
 *
 * <p>Scoring every row exactly in double takes about three times the 15 ms goal for 100,000 rows of 512 on one
 * desktop core, so the search runs in two passes. The first scores every row approximately with integers: the
 * query is quantised to integers p (|p| at most 32767, fewer for large D so that no int sum can overflow) with
 * one step t, and each row's int8 codes c (the file's own for int8 rows; rint(h / s) with s = max|h| / 127 for
 * float16 rows, computed when loading) give the exact integer dot(c, p) and the estimate a = m + s t dot(c, p),
 * where m = dot(mu, query) for the int8 file's mean mu (0 for float16 rows): the same for every row, so it moves
 * every estimate and every exact score alike. The error of a is bounded per row, with the row x = mu + s c + r,
 * e = query - t p and r the part of x the codes miss (zero for int8 rows):
 *
 * <pre>
 *   |score - a| = |s dot(c, e) + dot(r, query)| <= s |c| |e| + |r| |query|       (Cauchy-Schwarz)
 * </pre>
 *
 * plus 2^-36 (|mu| + s |c|) |query| for the rounding of every double computation involved (at most D 2^-52
 * relative for a sum of D <= 4096 products, far less for the rest; m is computed once, and the exact pass adds
 * the same m). So each row's exact score lies in [a - B, a + B]. Let tau be the k-th largest lower bound: k rows
 * score at least tau. A row whose upper bound is below tau by more than margin = 2^-21 max(|tau|, largest upper
 * bound), two float32 units in the last place at that magnitude, scores strictly below those k rows even after
 * rounding to float32, so it cannot be in the top k, nor tie with it. The second pass scores the remaining
 * candidates exactly and sorts them. The result is the exact ranking; the integer pass only decides which rows
 * need the exact score. With int8 rows, B is at most about 3e-5 for CLIP-like vectors (less when the mean takes
 * a common component out of the codes, as their scale s shrinks), so the candidates are the k rows and the few
 * within 1e-4 of the k-th.
 *
 * <p>The integer pass is written so that HotSpot's C2 (JDK 17, no Vector API, which Android lacks) vectorises it:
 * the four int8 elements of a packed word are extracted with shifts, each shift re-reading the array element
 * (C2 17 did not vectorise the loop when the word was held in a local), and the query is laid out as four
 * blocks, one per byte lane. Thread-safe: a search allocates its own working arrays.
 */
public final class IndexSearcher {
  /** One result: the row's id and its float32 score. */
  public record Hit(String id, float score) {}

  private static final double UP = 1 + 0x1p-40;

  private final IndexFile index;
  private final int dimension;
  private final int words;
  private final int count;
  /** Four int8 codes per int, row r at words [r * words, (r + 1) * words) (see IndexFile). */
  private final int[] codes;
  /** s: the step of row r's codes. */
  private final double[] steps;
  /** s |c|, rounded up. */
  private final double[] codeNorms;
  /** |x - s c|, rounded up; null for int8 rows, whose codes are exact. */
  private final double[] residualNorms;
  /** int8: the file's mean mu, which every row's codes are differences from; null for float16. */
  private final float[] mean;
  /** |mu|, rounded up (0 for float16). */
  private final double meanNorm;
  /** The largest |p| of the quantised query: no dot(c, p) with |c| <= 128 overflows an int. */
  private final int queryMax;

  public IndexSearcher(IndexFile index) {
    this.index = index;
    this.dimension = index.dimension();
    this.words = index.words();
    this.count = index.count();
    this.queryMax = (int) Math.min(32767, Integer.MAX_VALUE / (128L * 4 * words));
    this.steps = new double[count];
    this.codeNorms = new double[count];
    this.mean = index.mean();
    double meanSquares = 0;
    for (int j = 0; mean != null && j < dimension; j++) {
      meanSquares += (double) mean[j] * mean[j];
    }
    this.meanNorm = Math.sqrt(meanSquares) * UP;
    if (index.elementType() == ElementType.INT8) {
      this.codes = index.packed();
      this.residualNorms = null;
      float[] scales = index.scales();
      for (int r = 0; r < count; r++) {
        steps[r] = scales[r];
        codeNorms[r] = scales[r] * Math.sqrt(sumOfSquares(codes, r * words, words)) * UP;
      }
    } else {
      this.codes = new int[count * words];
      this.residualNorms = new double[count];
      quantiseHalves(index.halves());
    }
  }

  public IndexFile index() {
    return index;
  }

  /** float16 rows to int8 codes with a step per row, and the norm of what the codes miss. */
  private void quantiseHalves(short[] halves) {
    float[] row = new float[4 * words];
    for (int r = 0; r < count; r++) {
      double max = 0;
      for (int j = 0; j < dimension; j++) {
        row[j] = Half.toFloat(halves[r * dimension + j]);
        max = Math.max(max, Math.abs(row[j]));
      }
      double step = max == 0 ? 1 : max / 127;
      double codeSquares = 0;
      double residualSquares = 0;
      for (int k = 0; k < words; k++) {
        int word = 0;
        for (int lane = 0; lane < 4; lane++) {
          int j = 4 * k + lane;
          int code = j < dimension ? (int) Math.rint(row[j] / step) : 0;
          double residual = j < dimension ? row[j] - step * code : 0;
          codeSquares += (double) code * code;
          residualSquares += residual * residual;
          word |= (code & 0xff) << (8 * lane);
        }
        codes[r * words + k] = word;
      }
      steps[r] = step;
      codeNorms[r] = step * Math.sqrt(codeSquares) * UP;
      residualNorms[r] = Math.sqrt(residualSquares) * UP;
    }
  }

  /**
   * The {@code k} best rows for {@code query} (an L2-normalised embedding of the index's dimension), best first;
   * fewer when the index has fewer rows.
   */
  public List<Hit> search(float[] query, int k) {
    if (query.length != dimension) {
      throw new IllegalArgumentException("the query has " + query.length + " elements, the index "
          + index.file() + " " + dimension);
    }
    if (k < 1) {
      throw new IllegalArgumentException("k must be at least 1, got " + k);
    }
    double queryAbsMax = 0;
    double querySquares = 0;
    for (float value : query) {
      if (!Float.isFinite(value)) {
        throw new IllegalArgumentException("the query has a NaN or infinite element");
      }
      queryAbsMax = Math.max(queryAbsMax, Math.abs(value));
      querySquares += (double) value * value;
    }
    if (queryAbsMax == 0) {
      throw new IllegalArgumentException("the query is a zero vector");
    }
    k = Math.min(k, count);
    if (k == 0) {
      return List.of();
    }
    // The query as integers p in four blocks of `words`, block b holding the elements j = 4 i + b.
    double step = queryAbsMax / queryMax;
    int[] blocked = new int[4 * words];
    double errorSquares = 0;
    for (int j = 0; j < dimension; j++) {
      int p = (int) Math.rint(query[j] / step);
      blocked[(j & 3) * words + (j >> 2)] = p;
      double error = query[j] - step * p;
      errorSquares += error * error;
    }
    double queryNorm = Math.sqrt(querySquares) * UP;
    double roundingSlack = 0x1p-36 * queryNorm;
    double errorBound = Math.sqrt(errorSquares) * UP + roundingSlack;
    double residualBound = queryNorm + roundingSlack;
    double meanScore = meanScore(query);
    double meanSlack = meanNorm * roundingSlack;

    double[] estimates = new double[count];
    double[] bounds = new double[count];
    LowerBounds best = new LowerBounds(k);
    double largestUpper = Double.NEGATIVE_INFINITY;
    for (int r = 0; r < count; r++) {
      double estimate = meanScore + steps[r] * step * dot(codes, r * words, blocked, words);
      double bound = codeNorms[r] * errorBound + meanSlack
          + (residualNorms == null ? 0 : residualNorms[r] * residualBound);
      estimates[r] = estimate;
      bounds[r] = bound;
      best.offer(estimate - bound);
      largestUpper = Math.max(largestUpper, estimate + bound);
    }
    double tau = best.kth();
    double margin = 0x1p-21 * Math.max(Math.abs(tau), Math.abs(largestUpper)) + 0x1p-140;

    int[] candidates = new int[count];
    float[] scores = new float[count];
    int found = 0;
    for (int r = 0; r < count; r++) {
      if (estimates[r] + bounds[r] + margin >= tau) {
        candidates[found] = r;
        scores[found++] = score(r, query, meanScore);
      }
    }
    Integer[] order = new Integer[found];
    for (int i = 0; i < found; i++) {
      order[i] = i;
    }
    // Best score first; equal scores by id, which is row order (rows are sorted by id). Numeric comparison,
    // so that -0.0 and 0.0 are equal scores as they are in NumPy.
    Arrays.sort(order, (a, b) -> scores[a] != scores[b] ? (scores[a] > scores[b] ? -1 : 1)
        : Integer.compare(candidates[a], candidates[b]));
    List<Hit> hits = new ArrayList<>(k);
    for (int i = 0; i < k; i++) {
      int row = candidates[order[i]];
      hits.add(new Hit(index.id(row), scores[order[i]]));
    }
    return hits;
  }

  /** m = dot(mu, query) in double, the int8 score's term common to every row; 0 for float16 rows. */
  private double meanScore(float[] query) {
    double sum = 0;
    for (int j = 0; mean != null && j < dimension; j++) {
      sum += (double) mean[j] * query[j];
    }
    return sum;
  }

  /**
   * The score the format defines: the row's dot product with the query in double, rounded to float32; for int8
   * rows float32(m + s dot(q, query)), with {@code meanScore} = m.
   */
  private float score(int row, float[] query, double meanScore) {
    double sum = 0;
    if (residualNorms == null) {
      for (int j = 0; j < dimension; j++) {
        sum += (byte) (codes[row * words + (j >> 2)] >>> (8 * (j & 3))) * (double) query[j];
      }
      return (float) (meanScore + steps[row] * sum);
    }
    short[] halves = index.halves();
    for (int j = 0; j < dimension; j++) {
      sum += (double) Half.toFloat(halves[row * dimension + j]) * query[j];
    }
    return (float) sum;
  }

  /** dot(codes of one row, p): see the class comment for why each lane re-reads {@code codes[at + i]}. */
  private static int dot(int[] codes, int at, int[] blocked, int words) {
    int sum = 0;
    for (int i = 0; i < words; i++) {
      sum += ((codes[at + i] << 24) >> 24) * blocked[i]
          + ((codes[at + i] << 16) >> 24) * blocked[words + i]
          + ((codes[at + i] << 8) >> 24) * blocked[2 * words + i]
          + (codes[at + i] >> 24) * blocked[3 * words + i];
    }
    return sum;
  }

  /** sum of c^2 over one row; an int holds 4096 * 128^2. */
  private static int sumOfSquares(int[] codes, int at, int words) {
    int sum = 0;
    for (int i = 0; i < words; i++) {
      sum += ((codes[at + i] << 24) >> 24) * ((codes[at + i] << 24) >> 24)
          + ((codes[at + i] << 16) >> 24) * ((codes[at + i] << 16) >> 24)
          + ((codes[at + i] << 8) >> 24) * ((codes[at + i] << 8) >> 24)
          + (codes[at + i] >> 24) * (codes[at + i] >> 24);
    }
    return sum;
  }

  /** The k largest values offered, as a min-heap of primitive doubles: kth() is the smallest of them. */
  private static final class LowerBounds {
    private final double[] heap;
    private int size;

    LowerBounds(int k) {
      heap = new double[k];
    }

    void offer(double value) {
      if (size < heap.length) {
        int i = size++;
        while (i > 0 && heap[(i - 1) / 2] > value) {
          heap[i] = heap[(i - 1) / 2];
          i = (i - 1) / 2;
        }
        heap[i] = value;
      } else if (value > heap[0]) {
        int i = 0;
        while (true) {
          int child = 2 * i + 1;
          if (child >= size) {
            break;
          }
          if (child + 1 < size && heap[child + 1] < heap[child]) {
            child++;
          }
          if (heap[child] >= value) {
            break;
          }
          heap[i] = heap[child];
          i = child;
        }
        heap[i] = value;
      }
    }

    double kth() {
      return heap[0];
    }
  }
}

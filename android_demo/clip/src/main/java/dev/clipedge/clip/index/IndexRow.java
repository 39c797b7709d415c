package dev.clipedge.clip.index;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * One row as the file stores it: the id's UTF-8 bytes, the 16-byte content hash, the encoded elements
 * (little-endian float16, or int8 codes of the row's difference from the index's mean) and the int8 row's scale
 * (1 for float16, unused). Rows of an existing index are carried into its next version in this form, so an
 * update never re-quantises them (and keeps the mean they were made against).
 */
public record IndexRow(byte[] id, byte[] contentHash, byte[] elements, float scale) {
  /** int8 embeddings' elements lie in [-2, 2]: each fixed-point term of the mean is then at most 2^30. */
  static final float INT8_LIMIT = 2f;
  /** The mean's fixed point: terms rint(e * 2^29), summed exactly in a long (docs/device_index.md, mean). */
  private static final float MEAN_UNIT = 0x1p29f;

  /**
   * The mean docs/device_index.md defines for int8 files: element j is float32(S_j / n * 2^-29), S_j the exact
   * sum of rint(e_ij * 2^29), so that any order of the rows (Java lists them as photos come, Python by shard)
   * gives the same bytes; all zero for no rows. Elements must lie in [-2, 2], as {@link #encode} checks.
   */
  static float[] mean(Iterable<float[]> embeddings, int dimension) {
    long[] sums = new long[dimension];
    long n = 0;
    for (float[] embedding : embeddings) {
      if (embedding.length != dimension) {
        throw new IllegalArgumentException("an embedding has " + embedding.length + " elements, not " + dimension);
      }
      for (int j = 0; j < dimension; j++) {
        sums[j] += (long) Math.rint(embedding[j] * MEAN_UNIT); // float32 product: exact, a power of two
      }
      n++;
    }
    float[] mean = new float[dimension];
    for (int j = 0; n > 0 && j < dimension; j++) {
      mean[j] = (float) ((double) sums[j] / n * 0x1p-29);
    }
    return mean;
  }

  /**
   * The row of an L2-normalised embedding, encoded as docs/device_index.md says (float32 arithmetic): float16, or
   * int8 codes of {@code embedding - mean} ({@code mean}: the index's, of the same length; null for float16).
   */
  public static IndexRow encode(String id, byte[] contentHash, float[] embedding, ElementType type, float[] mean) {
    byte[] idBytes = id.getBytes(StandardCharsets.UTF_8);
    for (float value : embedding) {
      if (!Float.isFinite(value)) {
        throw new IllegalArgumentException("the embedding of " + id + " has a NaN or infinite value");
      }
    }
    if (type == ElementType.FLOAT16) {
      ByteBuffer elements = ByteBuffer.allocate(2 * embedding.length).order(ByteOrder.LITTLE_ENDIAN);
      for (float value : embedding) {
        short half = Half.fromFloat(value);
        if ((half & 0x7c00) == 0x7c00) {
          throw new IllegalArgumentException("the embedding of " + id + " has " + value + ", beyond float16");
        }
        elements.putShort(half);
      }
      return new IndexRow(idBytes, contentHash, elements.array(), 1f);
    }
    if (mean.length != embedding.length) {
      throw new IllegalArgumentException("the mean has " + mean.length + " elements, the embedding of " + id + " "
          + embedding.length);
    }
    float[] difference = new float[embedding.length];
    float max = 0f;
    for (int i = 0; i < embedding.length; i++) {
      if (Math.abs(embedding[i]) > INT8_LIMIT) {
        throw new IllegalArgumentException("the embedding of " + id + " has " + embedding[i]
            + ", beyond [-2, 2]: not a unit vector");
      }
      difference[i] = embedding[i] - mean[i]; // float32, as NumPy subtracts float32 arrays
      max = Math.max(max, Math.abs(difference[i]));
    }
    float scale = max == 0f ? 1f : max / 127f;
    if (scale < Float.MIN_NORMAL) { // d / s would overflow
      throw new IllegalArgumentException("the embedding of " + id + " differs too little from the mean to quantise "
          + "(max " + max + ")");
    }
    byte[] elements = new byte[embedding.length];
    for (int i = 0; i < embedding.length; i++) {
      float quotient = difference[i] / scale; // float32 division, as NumPy computes d / s on float32 arrays
      elements[i] = (byte) Math.max(-127, Math.min(127, Math.rint(quotient)));
    }
    return new IndexRow(idBytes, contentHash, elements, scale);
  }

  /** The id as text. */
  public String idString() {
    return new String(id, StandardCharsets.UTF_8);
  }
}

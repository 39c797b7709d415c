package dev.clipedge.clip.index;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * One row as the file stores it: the id's UTF-8 bytes, the 16-byte content hash, the encoded elements
 * (little-endian float16, or int8) and the int8 row's scale (1 for float16, unused). Rows of an existing index
 * are carried into its next version in this form, so an update never re-quantises them.
 */
public record IndexRow(byte[] id, byte[] contentHash, byte[] elements, float scale) {
  /** The row of an L2-normalised embedding, encoded as docs/device_index.md says (float32 arithmetic). */
  public static IndexRow encode(String id, byte[] contentHash, float[] embedding, ElementType type) {
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
    float max = 0f;
    for (float value : embedding) {
      max = Math.max(max, Math.abs(value));
    }
    float scale = max == 0f ? 1f : max / 127f;
    if (scale < Float.MIN_NORMAL) { // e / s would overflow: not an embedding (they are unit vectors)
      throw new IllegalArgumentException("the embedding of " + id + " is too small to quantise (max " + max + ")");
    }
    byte[] elements = new byte[embedding.length];
    for (int i = 0; i < embedding.length; i++) {
      float quotient = embedding[i] / scale; // float32 division, as NumPy computes e / s on float32 arrays
      elements[i] = (byte) Math.max(-127, Math.min(127, Math.rint(quotient)));
    }
    return new IndexRow(idBytes, contentHash, elements, scale);
  }

  /** The id as text. */
  public String idString() {
    return new String(id, StandardCharsets.UTF_8);
  }
}

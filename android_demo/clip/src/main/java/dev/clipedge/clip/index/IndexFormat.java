package dev.clipedge.clip.index;

import java.nio.charset.StandardCharsets;

/**
 * docs/device_index.md, format version 1: the header's fields and the section layout, which the reader and the
 * writer both compute from here (a reader refuses offsets other than these).
 */
final class IndexFormat {
  private IndexFormat() {}

  static final byte[] MAGIC = "CLIPIDX\0".getBytes(StandardCharsets.US_ASCII);
  static final int VERSION = 1;
  static final int HEADER_SIZE = 256;
  static final int MAX_DIMENSION = 4096;
  static final long MAX_ROWS = Integer.MAX_VALUE;
  /** The embeddings and the id-bytes sections: one Java array or mapping each. */
  static final long MAX_SECTION_BYTES = Integer.MAX_VALUE;
  static final int MAX_ID_BYTES = 4096;
  static final int HASH_BYTES = 16;
  static final int SHA256_BYTES = 32;
  static final int VARIANT_BYTES = 32;
  static final int NAME_BYTES = 64;
  static final int RESERVED_BYTES = 24;
  static final int ALIGNMENT = 64;

  // Header field offsets.
  static final int VERSION_AT = 8;
  static final int HEADER_SIZE_AT = 12;
  static final int DIMENSION_AT = 16;
  static final int TYPE_AT = 20;
  static final int COUNT_AT = 24;
  static final int FILE_SIZE_AT = 32;
  static final int EMBEDDINGS_AT = 40;
  static final int SCALES_AT = 48;
  static final int HASHES_AT = 56;
  static final int ID_OFFSETS_AT = 64;
  static final int ID_BYTES_AT = 72;
  static final int ID_LENGTH_AT = 80;
  static final int SHA256_AT = 88;
  static final int VARIANT_AT = 120;
  static final int NAME_AT = 152;
  static final int MEAN_AT = 216;
  static final int RESERVED_AT = 224;
  static final int BODY_CRC_AT = 248;
  static final int HEADER_CRC_AT = 252;

  /** Where each section starts (scales and mean are 0 for float16) and where the file ends: after the id bytes. */
  record Layout(long embeddings, long scales, long mean, long hashes, long idOffsets, long idBytes, long idLength,
                long fileSize) {
    static Layout of(ElementType type, int dimension, long count, long idLength) {
      long embeddings = HEADER_SIZE;
      long end = embeddings + count * dimension * type.bytes;
      long scales = 0;
      long mean = 0;
      if (type == ElementType.INT8) {
        scales = align(end);
        mean = align(scales + 4 * count);
        end = mean + 4L * dimension;
      }
      long hashes = align(end);
      long idOffsets = align(hashes + HASH_BYTES * count);
      long idBytes = align(idOffsets + 8 * (count + 1));
      return new Layout(embeddings, scales, mean, hashes, idOffsets, idBytes, idLength, idBytes + idLength);
    }
  }

  /** {@code offset} rounded up to a multiple of 64: a section ending on one starts the next right there. */
  static long align(long offset) {
    return (offset + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
  }
}

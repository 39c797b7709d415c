package dev.clipedge.clip.image;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;

/**
 * The CRC check of a PNG's critical chunks (IHDR, PLTE, IDAT, IEND: those whose type starts with a capital),
 * which javax.imageio skips and libpng, so the SavedModel's decode_png, makes: a PNG whose header CRC is wrong
 * was embedded by the JVM while the SavedModel refused it. Ancillary chunks with a bad CRC are ignored, as libpng
 * ignores them. Streams the file once through a fixed buffer.
 */
final class PngChunks {
  private static final int SIGNATURE_BYTES = 8;

  private PngChunks() {}

  /** Reads `in` (positioned at the file's start) up to IEND; throws naming the first critical chunk that fails. */
  static void checkCriticalCrcs(InputStream in, String label) throws IOException {
    skipFully(in, SIGNATURE_BYTES, label);
    byte[] buffer = new byte[1 << 16];
    while (true) {
      byte[] header = in.readNBytes(8);
      if (header.length < 8) {
        return; // truncated before IEND: the decoder names that
      }
      long length = readUnsigned32(header, 0);
      String type = new String(header, 4, 4, StandardCharsets.ISO_8859_1);
      CRC32 crc = new CRC32();
      crc.update(header, 4, 4);
      long left = length;
      while (left > 0) {
        int read = in.read(buffer, 0, (int) Math.min(buffer.length, left));
        if (read < 0) {
          return;
        }
        crc.update(buffer, 0, read);
        left -= read;
      }
      byte[] stored = in.readNBytes(4);
      if (stored.length < 4) {
        return;
      }
      boolean critical = Character.isUpperCase(type.charAt(0));
      if (critical && crc.getValue() != readUnsigned32(stored, 0)) {
        throw new ImageFiles.ImageFileException(label + ": PNG chunk " + printable(type) + " has a wrong CRC ("
            + String.format("%08x stored, %08x computed", readUnsigned32(stored, 0), crc.getValue())
            + "); the file is damaged", null);
      }
      if (type.equals("IEND")) {
        return;
      }
    }
  }

  private static void skipFully(InputStream in, int count, String label) throws IOException {
    if (in.readNBytes(count).length < count) {
      throw new ImageFiles.ImageFileException(label + ": PNG shorter than its signature", null);
    }
  }

  private static long readUnsigned32(byte[] bytes, int at) {
    return ((bytes[at] & 0xFFL) << 24) | ((bytes[at + 1] & 0xFFL) << 16) | ((bytes[at + 2] & 0xFFL) << 8)
        | (bytes[at + 3] & 0xFFL);
  }

  private static String printable(String type) {
    return type.chars().allMatch(c -> c >= 0x21 && c <= 0x7E) ? type : "(unprintable type)";
  }
}

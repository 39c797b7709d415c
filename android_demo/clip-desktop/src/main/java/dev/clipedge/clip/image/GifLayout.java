package dev.clipedge.clip.image;

import java.io.IOException;
import java.io.InputStream;

/**
 * A GIF's logical screen and the rectangle of every frame, read from its blocks without decoding any, as
 * clip_edge/image_decoding.py's _gif_size reads them. The SavedModel's decoder (TensorFlow's, on giflib) decodes
 * every frame, so the SavedModel checks them all first: it refuses a GIF whose screen and frames together exceed
 * the size limits, or whose frames hold more than {@link dev.clipedge.clip.Contract#MAX_GIF_PIXELS} pixels in all.
 * ImageIO decodes the first frame only, so the JVM applies the same limits from this layout.
 *
 * <p>The walk is _gif_size's: after the screen and its global palette, image descriptors (0x2C: position, size,
 * flags, local palette, LZW code size, data sub-blocks) and extensions (0x21: label, sub-blocks) until any other
 * byte (the trailer) or the end of the file; fields cut off by the end of the file read as 0. Reads the file once,
 * in order, holding at most a palette (768 bytes) of it.
 *
 * @param screenWidth the logical screen's width
 * @param screenHeight its height
 * @param first the first frame, null if the file has none
 * @param frames how many image descriptors the file has
 * @param width the screen's width grown to hold every frame at its position (what the limits are checked on)
 * @param height the screen's height grown alike
 * @param pixels the pixels of all frames (each width x height)
 */
record GifLayout(int screenWidth, int screenHeight, Frame first, long frames, int width, int height, long pixels) {
  /**
   * One image descriptor.
   *
   * @param flagsAt where its flags byte (0x40: interlaced) lies in the file
   * @param end where its image data ends in the file (after the sub-blocks' terminator)
   */
  record Frame(int left, int top, int width, int height, boolean interlaced, long flagsAt, long end) {}

  /** Reads `in` (positioned at the file's start, which is "GIF8") through its last frame. */
  static GifLayout read(InputStream in) throws IOException {
    Walk walk = new Walk(in);
    byte[] header = walk.bytes(13); // signature, version, screen width and height, flags, background, aspect
    int screenWidth = little16(header, 6);
    int screenHeight = little16(header, 8);
    walk.skip(paletteBytes(header[10]));
    Frame first = null;
    long frames = 0;
    int width = screenWidth;
    int height = screenHeight;
    long pixels = 0;
    while (true) {
      int block = walk.next();
      if (block == 0x2C) {
        long flagsAt = walk.position + 8;
        byte[] fields = walk.bytes(9); // left, top, width, height (16 bits each), flags
        walk.skip(paletteBytes(fields[8])); // the local palette
        walk.skip(1); // the LZW code size
        walk.skipSubBlocks();
        Frame frame = new Frame(little16(fields, 0), little16(fields, 2), little16(fields, 4), little16(fields, 6),
            (fields[8] & 0x40) != 0, flagsAt, walk.position);
        if (first == null) {
          first = frame;
        }
        frames++;
        width = Math.max(width, frame.left + frame.width);
        height = Math.max(height, frame.top + frame.height);
        pixels += (long) frame.width * frame.height;
      } else if (block == 0x21) {
        walk.skip(1); // the label
        walk.skipSubBlocks();
      } else {
        return new GifLayout(screenWidth, screenHeight, first, frames, width, height, pixels);
      }
    }
  }

  /** The bytes of the palette that follows the screen or an image descriptor with these flags (none if 0x80 is off). */
  private static int paletteBytes(byte flags) {
    return (flags & 0x80) != 0 ? 3 * (2 << (flags & 7)) : 0;
  }

  private static int little16(byte[] bytes, int at) {
    return (bytes[at] & 0xFF) | ((bytes[at + 1] & 0xFF) << 8);
  }

  /** The file read in order, with its position; past the end, bytes read as 0 and blocks as absent. */
  private static final class Walk {
    private final InputStream in;
    private final byte[] scratch = new byte[3 * 256];
    long position;

    Walk(InputStream in) {
      this.in = in;
    }

    /** The next byte, or -1 at the end of the file. */
    int next() throws IOException {
      int value = in.read();
      position++;
      return value;
    }

    /** The next `count` bytes, zeros for those past the end. */
    byte[] bytes(int count) throws IOException {
      byte[] bytes = new byte[count];
      in.readNBytes(bytes, 0, count);
      position += count;
      return bytes;
    }

    void skip(int count) throws IOException {
      in.readNBytes(scratch, 0, count);
      position += count;
    }

    /** Data sub-blocks: a length byte, that many bytes, until a length of 0 (or the end of the file). */
    void skipSubBlocks() throws IOException {
      for (int length = next(); length > 0; length = next()) {
        skip(length);
      }
    }
  }
}

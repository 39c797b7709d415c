package dev.clipedge.clip.image;

import java.awt.image.Raster;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;

/**
 * JPEGs of four components, CMYK or YCCK (CMYK whose first three components are stored as YCbCr), to the RGB the
 * SavedModel's decoder gives them. javax.imageio gives such files in a CMYK colour space of its own, or refuses
 * them (an Adobe transform it does not know), so their components are read unconverted (ImageReader.readRaster)
 * and converted here.
 *
 * <p>The rule is clip_edge/image_decoding.py's: the values are Adobe's inverted CMYK (0 = full ink) whatever the
 * markers say, as Pillow reads every CMYK JPEG, and R = K * C / 255 rounded down (G, B alike), as TensorFlow's
 * decode_jpeg computes it; Pillow rounds to nearest, so it can be one level above. The components are YCCK when
 * the file's last Adobe APP14 segment has a colour transform other than 0, as libjpeg decides; YCbCr then goes back
 * to (inverted) CMY with libjpeg's fixed-point arithmetic, so that the values equal those libjpeg gives TensorFlow.
 */
final class CmykJpeg {
  /** {@link Header#adobeTransform} of a file without an Adobe segment. */
  static final int NO_ADOBE_SEGMENT = -1;

  // libjpeg's YCbCr -> RGB in fixed point, 16 fractional bits: R = Y + 1.402 Cr, G = Y - 0.34414 Cb - 0.71414 Cr,
  // B = Y + 1.772 Cb, with Cb and Cr centred on 128, the products for R and B rounded, G's sum rounded once.
  private static final int SCALE_BITS = 16;
  private static final int[] CR_RED = new int[256];
  private static final int[] CB_BLUE = new int[256];
  private static final int[] CR_GREEN = new int[256];
  private static final int[] CB_GREEN = new int[256];

  static {
    int half = 1 << (SCALE_BITS - 1);
    for (int i = 0; i < 256; i++) {
      int centred = i - 128;
      CR_RED[i] = (fixed(1.40200) * centred + half) >> SCALE_BITS;
      CB_BLUE[i] = (fixed(1.77200) * centred + half) >> SCALE_BITS;
      CR_GREEN[i] = -fixed(0.71414) * centred;
      CB_GREEN[i] = -fixed(0.34414) * centred + half;
    }
  }

  private CmykJpeg() {}

  /** What the markers before the scan say: the frame's component count (0 if none was found) and the colour
   *  transform of the last Adobe segment ({@link #NO_ADOBE_SEGMENT} if none). */
  record Header(int components, int adobeTransform) {
    boolean ycck() {
      return adobeTransform > 0;
    }
  }

  /**
   * Reads `in` (positioned at the file's start) up to the first scan. Markers are found as libjpeg finds them
   * (bytes before a marker and fill bytes skipped); a file that ends first gives what was seen, and the decoder
   * then names the problem.
   */
  static Header readHeader(InputStream in) throws IOException {
    int components = 0;
    int adobeTransform = NO_ADOBE_SEGMENT;
    try {
      in.skipNBytes(2); // the start-of-image marker, checked with the file's signature
      while (true) {
        int marker = nextMarker(in);
        if (marker < 0 || marker == 0xD9 || marker == 0xDA) { // end of file, end of image, start of scan
          return new Header(components, adobeTransform);
        }
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {
          continue; // markers without a segment
        }
        byte[] length = in.readNBytes(2);
        int dataLength = length.length < 2 ? 0 : Math.max(0, (((length[0] & 0xFF) << 8) | (length[1] & 0xFF)) - 2);
        // Enough for both segments read here: the frame header's component count is its sixth byte; an Adobe
        // segment is "Adobe", version, two flag words and the transform (libjpeg needs all 12 bytes).
        byte[] data = in.readNBytes(Math.min(dataLength, 12));
        boolean frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
        if (frame && data.length >= 6) {
          components = data[5] & 0xFF;
        } else if (marker == 0xEE && data.length == 12 && data[0] == 'A' && data[1] == 'd' && data[2] == 'o'
            && data[3] == 'b' && data[4] == 'e') {
          adobeTransform = data[11] & 0xFF;
        }
        in.skipNBytes(dataLength - data.length);
      }
    } catch (EOFException e) {
      return new Header(components, adobeTransform);
    }
  }

  /** The next marker's code after any bytes that are not a marker, or -1 at the end of the file. */
  private static int nextMarker(InputStream in) throws IOException {
    while (true) {
      int b = in.read();
      while (b >= 0 && b != 0xFF) {
        b = in.read();
      }
      while (b == 0xFF) {
        b = in.read();
      }
      if (b != 0) { // 0xFF 0x00 is a stuffed data byte, not a marker
        return b;
      }
    }
  }

  /** The components of a four-band raster (CMYK or, if `ycck`, YCCK) as opaque 0xAARRGGBB. */
  static int[] toArgb(Raster raster, boolean ycck) {
    int width = raster.getWidth();
    int height = raster.getHeight();
    int[] argb = new int[width * height];
    int[] samples = new int[width * 4];
    for (int y = 0; y < height; y++) {
      raster.getPixels(raster.getMinX(), raster.getMinY() + y, width, 1, samples);
      for (int x = 0; x < width; x++) {
        int base = 4 * x;
        int c = samples[base];
        int m = samples[base + 1];
        int yellow = samples[base + 2];
        int k = samples[base + 3];
        if (ycck) {
          int luma = c;
          int cb = m;
          int cr = yellow;
          c = 255 - clamp(luma + CR_RED[cr]);
          m = 255 - clamp(luma + ((CB_GREEN[cb] + CR_GREEN[cr]) >> SCALE_BITS));
          yellow = 255 - clamp(luma + CB_BLUE[cb]);
        }
        argb[y * width + x] = 0xFF000000 | (k * c / 255) << 16 | (k * m / 255) << 8 | (k * yellow / 255);
      }
    }
    return argb;
  }

  private static int fixed(double value) {
    return (int) (value * (1 << SCALE_BITS) + 0.5);
  }

  private static int clamp(int value) {
    return Math.max(0, Math.min(255, value));
  }
}

package dev.clipedge.clip.image;

import dev.clipedge.clip.Contract;

/**
 * CLIP's image preprocessing on the device: shortest side resized to R with PIL's bicubic filter (antialiased when
 * shrinking), centre crop R x R, as transformers' CLIPImageProcessor and clip_edge/preprocessing.py do it. The
 * output is what the exported TFLite image encoders take: uint8 [1, R, R, 3] RGB, row-major HWC.
 *
 * <p>Android's Bitmap scaling is bilinear only, so the resampling is done here, with Pillow's arithmetic
 * (libImaging/Resample.c): filter weights computed in double, normalised per output pixel, rounded to 22
 * fractional bits; the horizontal pass first, then the vertical one, each accumulated in 32-bit integers and
 * rounded and clipped to 8 bits. That makes the result equal to Pillow's, and within one level of the Python
 * ImagePreprocessor (float32 matrix products, also horizontal first). One exception, measured with Pillow
 * 13.0.0: Pillow 13 runs the vertical pass first when the height shrinks by more than twice what the width
 * shrinks (for this resize: portrait images more than twice as tall as wide, shrunk), and the other order of the
 * two rounded passes moves some pixels by a level or two; we keep horizontal first, as the SavedModel does.
 * Unlike Pillow, only the output rows and columns that the crop keeps are computed, and only the input rows and
 * columns they need are read.
 *
 * <p>This is the resize and crop the contract names {@link Contract#RESIZE_RULE}; an export naming another is
 * refused. Images beyond the export's limits (its contract's largest side and area), and arrays whose length does not
 * match the size, are refused with an IllegalArgumentException before anything is allocated. There is no
 * normalisation step: the exported encoders take these uint8 pixels and normalise them themselves. Instances are
 * immutable and thread-safe.
 */
public final class ImagePreprocessor {
  /** Pillow's PRECISION_BITS (32 - 8 - 2): two bits spare for the filter's negative lobes and overshoot. */
  private static final int WEIGHT_BITS = Contract.PIL_WEIGHT_BITS;
  private static final int HALF = 1 << (WEIGHT_BITS - 1);

  /** Keys' cubic (a = Contract.PIL_BICUBIC_A), the kernel Pillow calls BICUBIC; its support is [-2, 2]. */
  private static final double SUPPORT = 2.0;

  /**
   * COMPOSITE[alpha * 256 + colour]: the colour composited onto white, computed as clip_edge/image_decoding.py's
   * to_rgb does in float32 (c * a/255 + 255 * (1 - a/255), rounded half to even as tf.round), so the same bytes
   * come out. Pillow's alpha_composite (used by transformers) rounds with integers and can differ by one level.
   */
  private static final byte[] COMPOSITE = new byte[256 * 256];

  static {
    for (int a = 0; a < 256; a++) {
      float alpha = a / 255.0f;
      for (int c = 0; c < 256; c++) {
        float blended = c * alpha + 255.0f * (1.0f - alpha);
        COMPOSITE[a * 256 + c] = (byte) Math.rint(blended);
      }
    }
  }

  private final int resolution;
  private final Contract.Image limits;

  /** To {@code resolution}, with an export's limits; an export that names another resize rule is refused. */
  public ImagePreprocessor(int resolution, Contract.Image contract) {
    // R * R * 3 bytes must fit one Java array.
    if (resolution <= 0 || (long) resolution * resolution * 3 > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException("resolution must be between 1 and 26754, got " + resolution);
    }
    if (!Contract.RESIZE_RULE.equals(contract.resize())) {
      throw new IllegalArgumentException("the export resizes images with '" + contract.resize() + "'; this code "
          + "implements '" + Contract.RESIZE_RULE + "' only");
    }
    this.resolution = resolution;
    this.limits = contract;
  }

  /** To {@code resolution}, with the limits of exports without a contract (for images outside any export). */
  public ImagePreprocessor(int resolution) {
    this(resolution, Contract.PRE_CONTRACT.image());
  }

  public int resolution() {
    return resolution;
  }

  /**
   * Pixels as Android's Bitmap.getPixels gives them (0xAARRGGBB, not premultiplied, row-major) -> R*R*3 bytes
   * RGB, row-major HWC. Alpha is composited onto white, as the Python path does.
   */
  public byte[] fromArgb(int[] argb, int width, int height) {
    limits.checkSize(width, height);
    checkLength("argb", argb == null ? -1 : argb.length, (long) width * height);
    return resizeAndCrop(new ArgbSource(argb, width), width, height);
  }

  /** Packed RGB bytes, row-major (width * height * 3) -> R*R*3 bytes RGB, row-major HWC. */
  public byte[] fromRgb(byte[] rgb, int width, int height) {
    limits.checkSize(width, height);
    checkLength("rgb", rgb == null ? -1 : rgb.length, (long) width * height * 3);
    return resizeAndCrop(new RgbSource(rgb, width), width, height);
  }

  /** The size limits this preprocessor refuses images beyond (to check a file's header before decoding it). */
  public Contract.Image limits() {
    return limits;
  }

  private static void checkLength(String name, int length, long expected) {
    if (length != expected) {
      throw new IllegalArgumentException(name + " array has " + (length < 0 ? "null" : length + " elements")
          + ", expected " + expected + " for the given width and height");
    }
  }

  /**
   * (new width, new height) with the shortest side = R, as transformers' get_resize_output_image_size: the long
   * side becomes floor(R * long / short) (transformers' int() of the float quotient is the same integer).
   */
  static int[] resizedSize(int width, int height, int resolution) {
    if (height <= width) {
      return new int[] {(int) ((long) resolution * width / height), resolution};
    }
    return new int[] {resolution, (int) ((long) resolution * height / width)};
  }

  /** Fixed-point weights for outputs first..first+count-1 of a resampling from inSize to outSize. */
  static final class Weights {
    final int[] start; // first input index of each output
    final int[] taps; // number of inputs of each output
    final int[] offset; // where each output's weights begin in `weights`
    final int[] weights; // k / 2^22

    Weights(int inSize, int outSize, int first, int count) {
      // Pillow computes scale in double from float box edges; sizes up to 65,535 are exact either way.
      double scale = (double) inSize / outSize;
      double filterScale = Math.max(scale, 1.0); // > 1 when shrinking: the kernel is stretched (antialiasing)
      double support = SUPPORT * filterScale;
      double inverse = 1.0 / filterScale;
      start = new int[count];
      taps = new int[count];
      offset = new int[count + 1];
      // At most ceil(support) * 2 + 1 inputs per output.
      int maxTaps = (int) Math.ceil(support) * 2 + 1;
      int[] buffer = new int[count * maxTaps];
      double[] kernel = new double[maxTaps];
      int used = 0;
      for (int i = 0; i < count; i++) {
        double centre = (first + i + 0.5) * scale;
        // Window of inputs around the centre, rounded with a (int) cast as Pillow does, clipped to the image.
        int lo = Math.max((int) (centre - support + 0.5), 0);
        int hi = Math.min((int) (centre + support + 0.5), inSize);
        int n = hi - lo;
        double total = 0.0;
        for (int x = 0; x < n; x++) {
          double w = bicubic(((x + lo) - centre + 0.5) * inverse);
          kernel[x] = w;
          total += w;
        }
        start[i] = lo;
        taps[i] = n;
        offset[i] = used;
        for (int x = 0; x < n; x++) {
          double w = total != 0.0 ? kernel[x] / total : kernel[x];
          // Round half away from zero to 22 fractional bits.
          double scaled = w * (1 << WEIGHT_BITS);
          buffer[used++] = (int) (w < 0 ? scaled - 0.5 : scaled + 0.5);
        }
      }
      offset[count] = used;
      weights = buffer;
    }

    /** One past the last input index any output reads. */
    int end() {
      int end = 0;
      for (int i = 0; i < start.length; i++) {
        end = Math.max(end, start[i] + taps[i]);
      }
      return end;
    }

    int begin() {
      int begin = Integer.MAX_VALUE;
      for (int s : start) {
        begin = Math.min(begin, s);
      }
      return begin;
    }
  }

  /** Keys' cubic convolution kernel in the arrangement Pillow evaluates (same double rounding). */
  static double bicubic(double x) {
    final double a = Contract.PIL_BICUBIC_A;
    if (x < 0.0) {
      x = -x;
    }
    if (x < 1.0) {
      return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    }
    if (x < 2.0) {
      return (((x - 5) * x + 8) * x - 4) * a;
    }
    return 0.0;
  }

  /** Round a 22-bit fixed-point sum (with the half already added) and clip to 0..255, as Pillow's clip8. */
  private static int clip8(int sum) {
    int value = sum >> WEIGHT_BITS;
    return value < 0 ? 0 : Math.min(value, 255);
  }

  /** Reads RGB values of one input row, columns [from, to), into ints (r, g, b interleaved). */
  private interface Source {
    void row(int y, int from, int to, int[] out);
  }

  private static final class ArgbSource implements Source {
    private final int[] argb;
    private final int width;

    ArgbSource(int[] argb, int width) {
      this.argb = argb;
      this.width = width;
    }

    @Override
    public void row(int y, int from, int to, int[] out) {
      int base = y * width;
      for (int x = from, o = 0; x < to; x++, o += 3) {
        int pixel = argb[base + x];
        int alpha = pixel >>> 24;
        int r = (pixel >> 16) & 0xFF;
        int g = (pixel >> 8) & 0xFF;
        int b = pixel & 0xFF;
        if (alpha != 255) {
          int row = alpha << 8;
          r = COMPOSITE[row + r] & 0xFF;
          g = COMPOSITE[row + g] & 0xFF;
          b = COMPOSITE[row + b] & 0xFF;
        }
        out[o] = r;
        out[o + 1] = g;
        out[o + 2] = b;
      }
    }
  }

  private static final class RgbSource implements Source {
    private final byte[] rgb;
    private final int width;

    RgbSource(byte[] rgb, int width) {
      this.rgb = rgb;
      this.width = width;
    }

    @Override
    public void row(int y, int from, int to, int[] out) {
      int base = (y * width + from) * 3;
      int n = (to - from) * 3;
      for (int i = 0; i < n; i++) {
        out[i] = rgb[base + i] & 0xFF;
      }
    }
  }

  private byte[] resizeAndCrop(Source source, int width, int height) {
    int r = resolution;
    int[] resized = resizedSize(width, height, r);
    // transformers' centre crop offsets; both resized sides are >= R, so no padding is ever needed.
    int left = (resized[0] - r) / 2;
    int top = (resized[1] - r) / 2;
    Weights columns = new Weights(width, resized[0], left, r);
    Weights rows = new Weights(height, resized[1], top, r);
    int columnFrom = columns.begin();
    int columnTo = columns.end();
    int rowFrom = rows.begin();
    int rowTo = rows.end();
    int stride = r * 3;
    // Intermediate image of the horizontal pass, 8 bits per value as Pillow's: only the rows the vertical pass
    // reads. Its size is bounded by height * R * 3 (<= 65,535 * R * 3).
    long intermediateSize = (long) (rowTo - rowFrom) * stride;
    if (intermediateSize > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException("image of " + width + " x " + height
          + " pixels needs a resampling buffer too large for resolution " + r);
    }
    byte[] intermediate = new byte[(int) intermediateSize];
    int[] line = new int[(columnTo - columnFrom) * 3];
    int[] cStart = columns.start;
    int[] cTaps = columns.taps;
    int[] cOffset = columns.offset;
    int[] cWeights = columns.weights;
    for (int y = rowFrom; y < rowTo; y++) {
      source.row(y, columnFrom, columnTo, line);
      int outBase = (y - rowFrom) * stride;
      for (int x = 0; x < r; x++) {
        int sr = HALF;
        int sg = HALF;
        int sb = HALF;
        int p = (cStart[x] - columnFrom) * 3;
        for (int k = cOffset[x], kEnd = k + cTaps[x]; k < kEnd; k++, p += 3) {
          int w = cWeights[k];
          sr += line[p] * w;
          sg += line[p + 1] * w;
          sb += line[p + 2] * w;
        }
        int o = outBase + x * 3;
        intermediate[o] = (byte) clip8(sr);
        intermediate[o + 1] = (byte) clip8(sg);
        intermediate[o + 2] = (byte) clip8(sb);
      }
    }

    byte[] out = new byte[r * stride];
    int[] sums = new int[stride];
    for (int y = 0; y < r; y++) {
      java.util.Arrays.fill(sums, HALF);
      int rowBase = (rows.start[y] - rowFrom) * stride;
      for (int k = rows.offset[y], kEnd = k + rows.taps[y]; k < kEnd; k++, rowBase += stride) {
        int w = rows.weights[k];
        for (int i = 0; i < stride; i++) {
          sums[i] += (intermediate[rowBase + i] & 0xFF) * w;
        }
      }
      int outBase = y * stride;
      for (int i = 0; i < stride; i++) {
        out[outBase + i] = (byte) clip8(sums[i]);
      }
    }
    return out;
  }
}

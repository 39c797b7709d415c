package dev.clipedge.clip.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.clipedge.clip.Contract;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Expected values are derived by hand from the definition of PIL's bicubic resampling (Keys' kernel a = -0.5,
 * output pixel o centred at (o + 0.5) * in/out, kernel stretched by in/out when shrinking, weights normalised per
 * output, each pass rounded to 8 bits); the derivations are in the comments. The Pillow comparison on real photos
 * is tests/test_jvm_preprocessing.py.
 */
class ImagePreprocessorTest {
  // Kernel values used below (|x| < 1: 1.5|x|^3 - 2.5|x|^2 + 1; 1 <= |x| < 2: -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2):
  //   k(0.25) = 111/128, k(0.75) = 29/128, k(1.25) = -9/128, k(1.75) = -3/128, k(1) = k(2) = 0, k(0) = 1.

  /** A grey image (all channels equal) from row-major values. */
  private static byte[] grey(int[] values) {
    byte[] rgb = new byte[values.length * 3];
    for (int i = 0; i < values.length; i++) {
      rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = (byte) values[i];
    }
    return rgb;
  }

  private static int at(byte[] rgb, int resolution, int row, int column, int channel) {
    return rgb[(row * resolution + column) * 3 + channel] & 0xFF;
  }

  @Test
  void anImageOfTheCropSizeIsUnchanged() {
    // Scale 1: output o is centred on input o, so the weights are k(-1), k(0), k(1), k(2) = 0, 1, 0, 0.
    byte[] rgb = new byte[6 * 6 * 3];
    new Random(1).nextBytes(rgb);
    assertArrayEquals(rgb, new ImagePreprocessor(6).fromRgb(rgb, 6, 6));
  }

  @Test
  void cropOffsetsOfTallWideAndOddImages() {
    // Shortest side = R: the long side keeps its length (R * long / short = long), resampling is the identity,
    // and the crop starts at (long - R) / 2, rounded down, as transformers' center_crop.
    int r = 4;
    int[][] cases = {{4, 9, 0, 2}, {11, 4, 3, 0}, {4, 5, 0, 0}, {4, 6, 0, 1}, {7, 4, 1, 0}};
    for (int[] c : cases) {
      int width = c[0];
      int height = c[1];
      int[] values = new int[width * height];
      for (int i = 0; i < values.length; i++) {
        values[i] = i; // position-coded
      }
      byte[] out = new ImagePreprocessor(r).fromRgb(grey(values), width, height);
      for (int y = 0; y < r; y++) {
        for (int x = 0; x < r; x++) {
          int expected = (y + c[3]) * width + (x + c[2]);
          assertEquals(expected, at(out, r, y, x, 1), width + "x" + height + " at " + y + "," + x);
        }
      }
    }
  }

  @Test
  void upscalingATwoPixelRow() {
    // Input 2 x 1 [0, 255], R = 2: the height 1 becomes 2 (each output row has one input row, weight 1), the
    // width 2 becomes 4 and the crop keeps columns 1 and 2. Scale 0.5, kernel not stretched.
    // Column 1: centre 0.75, inputs 0 and 1 at distances -0.25, 0.75 -> weights 111/140, 29/140 -> 255 * 29/140 =
    // 52.8 -> 53. Column 2: centre 1.25, distances -0.75, 0.25 -> 255 * 111/140 = 202.2 -> 202.
    byte[] out = new ImagePreprocessor(2).fromRgb(grey(new int[] {0, 255}), 2, 1);
    for (int y = 0; y < 2; y++) {
      for (int channel = 0; channel < 3; channel++) {
        assertEquals(53, at(out, 2, y, 0, channel));
        assertEquals(202, at(out, 2, y, 1, channel));
      }
    }
  }

  @Test
  void downscalingIsAntialiased() {
    // 8 x 8 -> R = 4 (scale 2, kernel stretched to support 4, distances halved), a white column 3 on black.
    // Vertically every column is constant, which normalised weights keep. Horizontally, output o is centred at
    // 2o + 1 and reads inputs x with weight k((x - 2o - 0.5) / 2), over the inputs inside the image:
    //   o = 0: x = 0..4, total 239/128, column 3 at distance 1.25 -> -9/239 * 255 < 0 -> 0
    //   o = 1: x = 0..6, total 259/128, column 3 at 0.25 -> 111/259 * 255 = 109.3 -> 109
    //   o = 2: x = 1..7, total 259/128, column 3 at -0.75 -> 29/259 * 255 = 28.6 -> 29
    //   o = 3: x = 3..7, total 239/128, column 3 at -1.75 -> -3/239 * 255 < 0 -> 0
    int[] values = new int[64];
    for (int y = 0; y < 8; y++) {
      values[y * 8 + 3] = 255;
    }
    byte[] out = new ImagePreprocessor(4).fromRgb(grey(values), 8, 8);
    int[] expected = {0, 109, 29, 0};
    for (int y = 0; y < 4; y++) {
      for (int x = 0; x < 4; x++) {
        assertEquals(expected[x], at(out, 4, y, x, 0), "row " + y + " column " + x);
      }
    }
  }

  @Test
  void overshootIsClippedNotWrapped() {
    // 3 x 1 [0, 255, 255] -> R = 2: width 6, crop columns 2 and 3, scale 0.5.
    // Column 3: centre 1.75, inputs 0..2 at distances -1.25, -0.25, 0.75 -> (-9, 111, 29)/131;
    //   255 * 140/131 = 272.5 -> clipped to 255 (a wrap-around would give 16).
    // Column 2: centre 1.25, inputs 0..2 at -0.75, 0.25, 1.25 -> (29, 111, -9)/131 -> 255 * 102/131 = 198.6 -> 199.
    byte[] out = new ImagePreprocessor(2).fromRgb(grey(new int[] {0, 255, 255}), 3, 1);
    assertEquals(199, at(out, 2, 0, 0, 0));
    assertEquals(255, at(out, 2, 0, 1, 0));
  }

  @Test
  void onePixelFillsTheCrop() {
    byte[] out = new ImagePreprocessor(5).fromRgb(new byte[] {10, (byte) 200, 77}, 1, 1);
    for (int i = 0; i < out.length; i += 3) {
      assertEquals(10, out[i] & 0xFF);
      assertEquals(200, out[i + 1] & 0xFF);
      assertEquals(77, out[i + 2] & 0xFF);
    }
  }

  @Test
  void aConstantImageStaysConstant() {
    // Weights sum to 1 (to within a few units of 2^-22, far below half a level), whatever the sizes.
    int[][] sizes = {{37, 23}, {23, 37}, {1, 300}, {300, 1}, {640, 480}};
    for (int[] size : sizes) {
      byte[] rgb = new byte[size[0] * size[1] * 3];
      for (int i = 0; i < rgb.length; i += 3) {
        rgb[i] = (byte) 250;
        rgb[i + 1] = 3;
        rgb[i + 2] = (byte) 128;
      }
      byte[] out = new ImagePreprocessor(7).fromRgb(rgb, size[0], size[1]);
      for (int i = 0; i < out.length; i += 3) {
        assertEquals(250, out[i] & 0xFF);
        assertEquals(3, out[i + 1] & 0xFF);
        assertEquals(128, out[i + 2] & 0xFF);
      }
    }
  }

  @Test
  void agreesWithTheDefinitionInDoublePrecision() {
    // The two-pass definition evaluated directly in double (no fixed point): the 22-bit weights can only move
    // a value that sits within about 2^-12 of a rounding boundary, by one level.
    Random random = new Random(7);
    int[][] cases = {{37, 53, 16}, {53, 37, 16}, {9, 13, 20}, {120, 90, 31}, {5, 200, 12}};
    for (int[] c : cases) {
      int width = c[0];
      int height = c[1];
      int r = c[2];
      byte[] rgb = new byte[width * height * 3];
      random.nextBytes(rgb);
      byte[] ours = new ImagePreprocessor(r).fromRgb(rgb, width, height);
      int[] reference = DefinitionReference.resizeAndCrop(rgb, width, height, r);
      int differing = 0;
      for (int i = 0; i < ours.length; i++) {
        int difference = Math.abs((ours[i] & 0xFF) - reference[i]);
        assertTrue(difference <= 1, "difference " + difference + " at " + i);
        differing += difference;
      }
      assertTrue(differing <= ours.length / 100, differing + " values differ by one");
    }
  }

  /** Straight from the definition, written for the test: dense weights, double sums, rounding per pass. */
  private static final class DefinitionReference {
    static double kernel(double x) {
      x = Math.abs(x);
      if (x < 1) {
        return 1.5 * x * x * x - 2.5 * x * x + 1;
      }
      if (x < 2) {
        return -0.5 * x * x * x + 2.5 * x * x - 4 * x + 2;
      }
      return 0;
    }

    /** Weights [out][in] for the full output size, each row normalised to sum 1. */
    static double[][] weights(int in, int out) {
      double scale = (double) in / out;
      double stretch = Math.max(scale, 1);
      double[][] w = new double[out][in];
      for (int o = 0; o < out; o++) {
        double centre = (o + 0.5) * scale;
        double total = 0;
        for (int i = 0; i < in; i++) {
          w[o][i] = kernel((i + 0.5 - centre) / stretch);
          total += w[o][i];
        }
        for (int i = 0; i < in; i++) {
          w[o][i] /= total;
        }
      }
      return w;
    }

    static int level(double value) {
      return (int) Math.max(0, Math.min(255, Math.floor(value + 0.5)));
    }

    static int[] resizeAndCrop(byte[] rgb, int width, int height, int r) {
      int newWidth = height <= width ? r * width / height : r;
      int newHeight = height <= width ? r : r * height / width;
      double[][] wx = weights(width, newWidth);
      double[][] wy = weights(height, newHeight);
      int[][][] horizontal = new int[height][newWidth][3];
      for (int y = 0; y < height; y++) {
        for (int o = 0; o < newWidth; o++) {
          for (int c = 0; c < 3; c++) {
            double sum = 0;
            for (int x = 0; x < width; x++) {
              sum += wx[o][x] * (rgb[(y * width + x) * 3 + c] & 0xFF);
            }
            horizontal[y][o][c] = level(sum);
          }
        }
      }
      int top = (newHeight - r) / 2;
      int left = (newWidth - r) / 2;
      int[] out = new int[r * r * 3];
      for (int oy = 0; oy < r; oy++) {
        for (int ox = 0; ox < r; ox++) {
          for (int c = 0; c < 3; c++) {
            double sum = 0;
            for (int y = 0; y < height; y++) {
              sum += wy[oy + top][y] * horizontal[y][ox + left][c];
            }
            out[(oy * r + ox) * 3 + c] = level(sum);
          }
        }
      }
      return out;
    }
  }

  @Test
  void alphaIsCompositedOntoWhite() {
    // c * a/255 + 255 * (1 - a/255), rounded: alpha 0 -> white; 255 -> the colour; black at 128 -> 127;
    // 100 at 51 (a/255 = 0.2) -> 20 + 204 = 224.
    int[] argb = {
        0x00123456, 0xFF123456, 0x80000000, 0x33646464,
    };
    ImagePreprocessor identity = new ImagePreprocessor(2);
    byte[] out = identity.fromArgb(argb, 2, 2);
    int[][] expected = {{255, 255, 255}, {0x12, 0x34, 0x56}, {127, 127, 127}, {224, 224, 224}};
    for (int i = 0; i < 4; i++) {
      for (int c = 0; c < 3; c++) {
        assertEquals(expected[i][c], out[i * 3 + c] & 0xFF, "pixel " + i + " channel " + c);
      }
    }
  }

  @Test
  void opaqueArgbEqualsRgb() {
    Random random = new Random(3);
    int width = 45;
    int height = 31;
    int[] argb = new int[width * height];
    byte[] rgb = new byte[width * height * 3];
    for (int i = 0; i < argb.length; i++) {
      int colour = random.nextInt(1 << 24);
      argb[i] = 0xFF000000 | colour;
      rgb[3 * i] = (byte) (colour >> 16);
      rgb[3 * i + 1] = (byte) (colour >> 8);
      rgb[3 * i + 2] = (byte) colour;
    }
    ImagePreprocessor preprocessor = new ImagePreprocessor(16);
    assertArrayEquals(preprocessor.fromRgb(rgb, width, height), preprocessor.fromArgb(argb, width, height));
  }

  @Test
  void sizeLimitsAreCheckedBeforeTheArray() {
    ImagePreprocessor preprocessor = new ImagePreprocessor(224);
    int[][] bad = {{0, 10}, {10, 0}, {-1, 5}, {65_536, 1}, {1, 65_536}, {10_001, 10_000}};
    for (int[] size : bad) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> preprocessor.fromArgb(new int[1], size[0], size[1]));
      assertTrue(e.getMessage().contains(size[0] + " x " + size[1]), e.getMessage());
      assertThrows(IllegalArgumentException.class, () -> preprocessor.fromRgb(new byte[3], size[0], size[1]));
    }
    // The largest allowed sizes pass the check (and fail only on the deliberately short array).
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> preprocessor.fromRgb(new byte[3], 65_535, 1_525));
    assertTrue(e.getMessage().contains("rgb array has 3 elements, expected " + 65_535L * 1_525 * 3), e.getMessage());
  }

  @Test
  void wrongArrayLengthsAreErrorsNamingThem() {
    ImagePreprocessor preprocessor = new ImagePreprocessor(8);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> preprocessor.fromArgb(new int[11], 4, 3));
    assertEquals("argb array has 11 elements, expected 12 for the given width and height", e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> preprocessor.fromRgb(new byte[12], 4, 3));
    assertEquals("rgb array has 12 elements, expected 36 for the given width and height", e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> preprocessor.fromRgb(null, 4, 3));
    assertTrue(e.getMessage().contains("null"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new ImagePreprocessor(0));
    assertThrows(IllegalArgumentException.class, () -> new ImagePreprocessor(30_000));
  }

  @Test
  void limitsAndRuleAreTheExportsContracts() {
    ImagePreprocessor preprocessor = new ImagePreprocessor(4, new Contract.Image(100, 5_000, Contract.RESIZE_RULE));
    assertEquals(100, preprocessor.limits().maxSide());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> preprocessor.fromRgb(new byte[101 * 3], 101, 1));
    assertTrue(e.getMessage().endsWith("has a side longer than 100 pixels"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> preprocessor.fromRgb(new byte[80 * 80 * 3], 80, 80));
    assertTrue(e.getMessage().endsWith("is larger than 5000 pixels"), e.getMessage());
    assertEquals(4 * 4 * 3, preprocessor.fromRgb(new byte[70 * 70 * 3], 70, 70).length);
    // An export that resizes another way is refused rather than preprocessed differently from its SavedModel.
    e = assertThrows(IllegalArgumentException.class,
        () -> new ImagePreprocessor(4, new Contract.Image(100, 5_000, "bilinear_squash")));
    assertEquals("the export resizes images with 'bilinear_squash'; this code implements '" + Contract.RESIZE_RULE
        + "' only", e.getMessage());
  }
}

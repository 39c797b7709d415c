package dev.clipedge.clip.index;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** float16 conversions against values derived from the binary16 definition, not from Half's bit tricks. */
class HalfTest {
  /** The value of a finite half by its definition: (-1)^s 2^(e-15) (1 + m/1024), or 2^-14 m/1024 when e = 0. */
  private static double defined(int bits) {
    int exponent = (bits >> 10) & 0x1f;
    int mantissa = bits & 0x3ff;
    double magnitude = exponent == 0 ? Math.scalb(mantissa / 1024.0, -14)
        : Math.scalb(1 + mantissa / 1024.0, exponent - 15);
    return (bits & 0x8000) != 0 ? -magnitude : magnitude;
  }

  @Test
  void everyFiniteHalfConvertsExactlyAndBack() {
    for (int bits = 0; bits < 0x10000; bits++) {
      if (((bits >> 10) & 0x1f) == 0x1f) {
        continue;
      }
      float value = Half.toFloat((short) bits);
      assertEquals(defined(bits), value, 0.0, "half " + Integer.toHexString(bits));
      assertEquals(bits, Half.fromFloat(value) & 0xffff, "round trip of " + value);
    }
    assertEquals(Float.POSITIVE_INFINITY, Half.toFloat((short) 0x7c00));
    assertEquals(0x7c00, Half.fromFloat(Float.POSITIVE_INFINITY) & 0xffff);
  }

  @Test
  void floatsRoundToTheNearestHalfTiesToEven() {
    double[] halves = new double[0x7c00]; // the non-negative finite halves, ascending with their bits
    for (int bits = 0; bits < 0x7c00; bits++) {
      halves[bits] = defined(bits);
    }
    SplittableRandom random = new SplittableRandom(18);
    for (int i = 0; i < 200_000; i++) {
      // Magnitudes across the whole half range, subnormals included, plus exact midpoints.
      float value = i % 4 == 0
          ? (float) ((halves[random.nextInt(0x7bff)] + halves[random.nextInt(0x7bff) + 1]) / 2)
          : (float) Math.scalb(random.nextDouble(), random.nextInt(-26, 16));
      if (i % 4 == 1) {
        int low = random.nextInt(0x7bff);
        value = (float) ((halves[low] + halves[low + 1]) / 2); // a tie: must go to the even mantissa
      }
      int expected = nearest(halves, value);
      assertEquals(expected, Half.fromFloat(value) & 0xffff, "float " + value);
      assertEquals(expected | 0x8000, Half.fromFloat(-value) & 0xffff, "float " + -value);
    }
    assertEquals(0x7bff, Half.fromFloat(65519.99f) & 0xffff);
    assertEquals(0x7c00, Half.fromFloat(65520f) & 0xffff); // the tie above 65504 goes to even: infinity
  }

  private static int nearest(double[] halves, float value) {
    int at = Arrays.binarySearch(halves, value);
    if (at >= 0) {
      return at;
    }
    int above = -at - 1;
    if (above == halves.length) {
      double next = 65536; // where the next half would be: past the midpoint is infinity
      return value - halves[above - 1] < next - value ? above - 1 : 0x7c00;
    }
    double down = value - halves[above - 1];
    double up = halves[above] - value;
    if (down != up) {
      return down < up ? above - 1 : above;
    }
    return (above - 1) % 2 == 0 ? above - 1 : above;
  }
}

package dev.clipedge.clip.index;

/**
 * IEEE 754 binary16 conversions (JDK 17 and Android have no Float.floatToFloat16): float to half rounded to
 * nearest, ties to even, as NumPy's astype(float16) rounds, and half to float, which is exact.
 */
final class Half {
  private Half() {}

  static float toFloat(short half) {
    int bits = half & 0xffff;
    int sign = (bits & 0x8000) << 16;
    int exponent = (bits >>> 10) & 0x1f;
    int mantissa = bits & 0x3ff;
    if (exponent == 0x1f) { // infinity or NaN
      return Float.intBitsToFloat(sign | 0x7f800000 | (mantissa << 13));
    }
    if (exponent == 0) { // zero or subnormal: mantissa * 2^-24, exact in float
      float value = mantissa * 0x1p-24f;
      return sign == 0 ? value : -value;
    }
    return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
  }

  static short fromFloat(float value) {
    int bits = Float.floatToRawIntBits(value);
    int sign = (bits >>> 16) & 0x8000;
    int magnitude = bits & 0x7fffffff;
    if (magnitude > 0x7f800000) { // NaN: a quiet NaN
      return (short) (sign | 0x7e00);
    }
    if (magnitude >= 0x477ff000) { // 65520 and above (infinity included) round to infinity: 65504 is odd
      return (short) (sign | 0x7c00);
    }
    if (magnitude < 0x38800000) { // below 2^-14, the smallest normal half: a multiple of 2^-24
      // value * 2^24 is exact (a power-of-two scaling into the normal range); rint rounds ties to even.
      return (short) (sign | (int) Math.rint(Float.intBitsToFloat(magnitude) * 0x1p24));
    }
    int half = (((magnitude >>> 23) - 112) << 10) | ((magnitude >>> 13) & 0x3ff);
    int dropped = magnitude & 0x1fff;
    if (dropped > 0x1000 || (dropped == 0x1000 && (half & 1) != 0)) {
      half++; // a carry out of the mantissa correctly increments the exponent
    }
    return (short) (sign | half);
  }
}

package dev.clipedge.clip;

/**
 * Vector maths on CLIP embeddings: L2 normalisation, dot product, cosine similarity. Sums are taken in double.
 *
 * <p>The exported encoders already return L2-normalised embeddings (x * rsqrt(max(sum x^2, 1e-12)) in the graph);
 * normalising again here changes them only by float rounding, and makes embeddings from elsewhere (a server, a
 * file) safe to mix in. Unlike the graph's clamp, a zero (or non-finite) vector is an error here: it has no
 * direction, and a silent zero or NaN similarity would rank it arbitrarily.
 */
public final class Embeddings {
  private Embeddings() {}

  /** A new unit-length copy of `vector`; a zero, empty or non-finite vector is an IllegalArgumentException. */
  public static float[] l2Normalize(float[] vector) {
    double norm = Math.sqrt(squaredNorm(vector));
    if (norm == 0.0) {
      throw new IllegalArgumentException("cannot normalise a zero vector (length " + vector.length + ")");
    }
    float[] unit = new float[vector.length];
    for (int i = 0; i < vector.length; i++) {
      unit[i] = (float) (vector[i] / norm);
    }
    return unit;
  }

  public static double dot(float[] a, float[] b) {
    if (a.length != b.length) {
      throw new IllegalArgumentException("embeddings differ in length: " + a.length + " and " + b.length);
    }
    double sum = 0.0;
    for (int i = 0; i < a.length; i++) {
      sum += (double) a[i] * b[i];
    }
    return sum;
  }

  /** Cosine similarity; zero or non-finite vectors are errors as in {@link #l2Normalize}. */
  public static double cosine(float[] a, float[] b) {
    double dot = dot(a, b);
    double norms = Math.sqrt(squaredNorm(a)) * Math.sqrt(squaredNorm(b));
    if (norms == 0.0) {
      throw new IllegalArgumentException("cosine of a zero vector");
    }
    return dot / norms;
  }

  private static double squaredNorm(float[] vector) {
    if (vector.length == 0) {
      throw new IllegalArgumentException("empty embedding");
    }
    double sum = 0.0;
    for (float value : vector) {
      sum += (double) value * value;
    }
    if (!Double.isFinite(sum)) {
      throw new IllegalArgumentException("embedding has a NaN or infinite value");
    }
    return sum;
  }
}

package dev.clipedge.clip;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * Zero-shot classification from embeddings, as the exported SavedModel's serving_default computes it:
 * logits = logit_scale * normalised image . normalised text, probabilities = softmax over the labels.
 * logit_scale is exp(the model's stored logit_scale parameter) capped at the contract's max_logit_scale
 * (clip_edge/model.py), as the manifest's logit_multiplier gives it. Use {@link Embeddings} for the vector maths
 * and {@link TextEmbeddingCache} to keep label embeddings between queries. Immutable and thread-safe.
 */
public final class ZeroShot {
  /** One label's result; `index` is its position in the label list given to {@link #rank}. */
  public record LabelScore(String label, int index, double logit, double probability) {}

  private final double logitScale;

  /** `logitScale` is the multiplier itself (e.g. 100 for OpenAI's checkpoints), not its logarithm. */
  public ZeroShot(double logitScale) {
    if (!(logitScale > 0.0) || !Double.isFinite(logitScale)) {
      throw new IllegalArgumentException("logit scale must be positive and finite, got " + logitScale);
    }
    this.logitScale = logitScale;
  }

  public double logitScale() {
    return logitScale;
  }

  /** logit_scale * cosine(image, text) for each text embedding. */
  public double[] logits(float[] image, List<float[]> texts) {
    float[] unitImage = Embeddings.l2Normalize(image);
    double[] logits = new double[texts.size()];
    for (int i = 0; i < logits.length; i++) {
      logits[i] = logitScale * Embeddings.dot(unitImage, Embeddings.l2Normalize(texts.get(i)));
    }
    return logits;
  }

  /** Softmax with the maximum subtracted first, so large logits (up to 100 and beyond) do not overflow. */
  public static double[] softmax(double[] logits) {
    if (logits.length == 0) {
      throw new IllegalArgumentException("softmax of no logits");
    }
    double max = Double.NEGATIVE_INFINITY;
    for (double logit : logits) {
      if (Double.isNaN(logit)) {
        throw new IllegalArgumentException("softmax of a NaN logit");
      }
      max = Math.max(max, logit);
    }
    if (Double.isInfinite(max)) {
      throw new IllegalArgumentException("softmax needs a finite largest logit, got " + max);
    }
    double[] probabilities = new double[logits.length];
    double sum = 0.0;
    for (int i = 0; i < logits.length; i++) {
      probabilities[i] = Math.exp(logits[i] - max);
      sum += probabilities[i];
    }
    for (int i = 0; i < probabilities.length; i++) {
      probabilities[i] /= sum;
    }
    return probabilities;
  }

  /** Indices of the k largest scores, largest first; equal scores keep their index order (lower first). */
  public static int[] topK(double[] scores, int k) {
    if (k < 0) {
      throw new IllegalArgumentException("k must not be negative, got " + k);
    }
    Integer[] order = new Integer[scores.length];
    for (int i = 0; i < order.length; i++) {
      order[i] = i;
    }
    // A stable sort on the score alone keeps tied indices in their original order.
    Arrays.sort(order, Comparator.comparingDouble((Integer i) -> scores[i]).reversed());
    int count = Math.min(k, order.length);
    int[] top = new int[count];
    for (int i = 0; i < count; i++) {
      top[i] = order[i];
    }
    return top;
  }

  /** The k most probable labels for an image, most probable first (ties in label order). */
  public List<LabelScore> rank(float[] image, List<String> labels, List<float[]> textEmbeddings, int k) {
    if (labels.size() != textEmbeddings.size()) {
      throw new IllegalArgumentException(labels.size() + " labels but " + textEmbeddings.size()
          + " text embeddings");
    }
    double[] logits = logits(image, textEmbeddings);
    double[] probabilities = softmax(logits);
    List<LabelScore> ranking = new ArrayList<>();
    for (int index : topK(logits, k)) {
      ranking.add(new LabelScore(labels.get(index), index, logits[index], probabilities[index]));
    }
    return ranking;
  }
}

package dev.clipedge.clip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.clipedge.clip.runtime.LiteRtJvmModel;
import dev.clipedge.clip.runtime.LiteRtFixture;
import dev.clipedge.clip.runtime.ModelLoader;
import dev.clipedge.clip.text.ClipTokenizer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The whole on-device classification behind one call (the core's ClipClassifier), on a real export run by the
 * desktop runtime ({@link LiteRtFixture}; skipped without it): its probabilities are compared with a softmax
 * over cosines computed here, in double precision, from the encoders' own outputs: a label paired with another's
 * embedding, a stale cache entry, a wrong logit multiplier or a lost label would each change them.
 */
class ClipClassifierOnLiteRtTest {
  /** A 37 x 23 image of smooth gradients (not square: the crop matters), opaque. */
  private static int[] gradient(int width, int height) {
    int[] argb = new int[width * height];
    for (int y = 0; y < height; y++) {
      for (int x = 0; x < width; x++) {
        argb[y * width + x] = 0xff000000 | (x * 255 / width) << 16 | (y * 255 / height) << 8 | ((x + y) * 3 & 0xff);
      }
    }
    return argb;
  }

  /** softmax(multiplier * cosine(image, text_i)) computed in double. */
  private static Map<String, Double> expected(float[] image, List<String> labels, List<float[]> texts,
      double multiplier) {
    double[] logits = new double[labels.size()];
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < logits.length; i++) {
      double dot = 0;
      double imageNorm = 0;
      double textNorm = 0;
      for (int d = 0; d < image.length; d++) {
        dot += (double) image[d] * texts.get(i)[d];
        imageNorm += (double) image[d] * image[d];
        textNorm += (double) texts.get(i)[d] * texts.get(i)[d];
      }
      logits[i] = multiplier * dot / Math.sqrt(imageNorm * textNorm);
      max = Math.max(max, logits[i]);
    }
    double total = 0;
    for (double logit : logits) {
      total += Math.exp(logit - max);
    }
    Map<String, Double> probabilities = new HashMap<>();
    for (int i = 0; i < logits.length; i++) {
      probabilities.put(labels.get(i), Math.exp(logits[i] - max) / total);
    }
    return probabilities;
  }

  @Test
  void probabilitiesAreTheSoftmaxOfScaledCosines() throws IOException {
    Path export = LiteRtFixture.export();
    Manifest manifest = Manifest.load(export);
    ModelLoader loader = file -> LiteRtJvmModel.open(file, LiteRtJvmModel.Options.cpu(1));
    int width = 37;
    int height = 23;
    int[] argb = gradient(width, height);
    List<String> labels = List.of("a photo of a cat", "a diagram", "a red car at night", "two dogs", "snow");
    // The reference: each encoder on its own, the tokenizer padding to the text encoder's length.
    float[] image;
    List<float[]> texts = new ArrayList<>();
    try (ImageEncoder imageEncoder = new ImageEncoder(manifest, "float32", loader);
         TextEncoder textEncoder = new TextEncoder(manifest, "float32", loader)) {
      image = imageEncoder.encode(imageEncoder.preprocessor().fromArgb(argb, width, height));
      ClipTokenizer tokenizer = ClipTokenizer.fromExport(manifest, textEncoder.contextLength());
      for (String label : labels) {
        texts.add(textEncoder.encode(tokenizer.tokenize(label).ids()));
      }
    }
    Map<String, Double> expected = expected(image, labels, texts, manifest.logitMultiplier());
    try (ClipClassifier classifier = ClipClassifier.open(manifest, "float32", loader, 3)) {
      // Twice with the labels in another order and a cache smaller than the label set: the second call mixes
      // cached and evicted labels, and each must still get its own embedding.
      List<String> reversed = new ArrayList<>(labels);
      java.util.Collections.reverse(reversed);
      for (List<String> order : List.of(labels, reversed, labels)) {
        List<ZeroShot.LabelScore> ranking = classifier.classify(argb, width, height, order).ranking();
        assertEquals(order.size(), ranking.size());
        double total = 0;
        for (int i = 0; i < ranking.size(); i++) {
          ZeroShot.LabelScore score = ranking.get(i);
          assertEquals(expected.get(score.label()), score.probability(), 1e-6, score.label());
          assertEquals(order.get(score.index()), score.label(), "index points into the given order");
          if (i > 0) {
            assertTrue(ranking.get(i - 1).probability() >= score.probability(), "most probable first");
          }
          total += score.probability();
        }
        assertEquals(1.0, total, 1e-9);
      }
      assertEquals(manifest.artifact("image", "float32").inputs().get(0).shape()[1], classifier.resolution());
      assertThrows(IllegalArgumentException.class, () -> classifier.classify(argb, width, height, List.of()));
    }
  }
}

package dev.clipedge.clip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.clipedge.clip.runtime.DType;
import dev.clipedge.clip.runtime.LiteRtJvmModel;
import dev.clipedge.clip.runtime.ModelLoader;
import dev.clipedge.clip.runtime.TensorInfo;
import dev.clipedge.clip.runtime.TfliteModel;
import dev.clipedge.clip.text.ClipTokenizer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole on-device classification behind one call. On a real export (LiteRtJvmModelTest's properties:
 * {@code -Dclipedge.litert.jni=... -Dclipedge.test.export=DIR}, which tests/test_jvm_runtime.py passes; skipped
 * without them) its probabilities are compared with a softmax over cosines computed here, in double precision,
 * from the encoders' own outputs: a label paired with another's embedding, a stale cache entry, a wrong logit
 * multiplier or a lost label would each change them.
 */
class ClipClassifierTest {
  @TempDir Path folder;

  private static Path export() {
    String library = System.getProperty(LiteRtJvmModel.LIBRARY_PROPERTY);
    String export = System.getProperty("clipedge.test.export");
    assumeTrue(library != null && export != null, "set -Dclipedge.litert.jni and -Dclipedge.test.export");
    return Path.of(export);
  }

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
    Path export = export();
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

  /** Reports the fixture's image or text tensors; records closing. */
  private static final class ClosingModel implements TfliteModel {
    final TensorInfo input;
    final TensorInfo output;
    boolean closed;

    ClosingModel(TensorInfo input, TensorInfo output) {
      this.input = input;
      this.output = output;
    }

    @Override
    public List<String> signatureKeys() {
      return List.of("serving_default");
    }

    @Override
    public List<TensorInfo> inputs(String key) {
      return List.of(input);
    }

    @Override
    public List<TensorInfo> outputs(String key) {
      return List.of(output);
    }

    @Override
    public void run(String key, ByteBuffer[] inputs, ByteBuffer[] outputs) {
      throw new AssertionError("not run in this test");
    }

    @Override
    public void close() {
      closed = true;
    }
  }

  @Test
  void aFailedOpenClosesWhatItOpened() throws IOException {
    // The fixture lists no merges.txt: opening the tokenizer fails after both encoders are open, and an app that
    // retries must not leak their native memory each time.
    Manifest manifest = Manifest.load(ExportFixture.writeDefault(folder.resolve("e")));
    List<ClosingModel> opened = new ArrayList<>();
    ModelLoader loader = file -> {
      boolean image = file.getFileName().toString().startsWith("image");
      ClosingModel model = image
          ? new ClosingModel(new TensorInfo("pixels", DType.UINT8, new int[] {1, 4, 4, 3}),
              new TensorInfo("embedding", DType.FLOAT32, new int[] {1, 2}))
          : new ClosingModel(new TensorInfo("token_ids", DType.INT32, new int[] {1, 5}),
              new TensorInfo("embedding", DType.FLOAT32, new int[] {1, 2}));
      opened.add(model);
      return model;
    };
    assertThrows(Manifest.ExportException.class, () -> ClipClassifier.open(manifest, "float32", loader, 4));
    assertEquals(2, opened.size());
    assertTrue(opened.get(0).closed && opened.get(1).closed);
  }
}

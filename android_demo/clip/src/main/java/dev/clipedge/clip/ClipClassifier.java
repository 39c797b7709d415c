package dev.clipedge.clip;

import dev.clipedge.clip.image.ImagePreprocessor;
import dev.clipedge.clip.runtime.ModelLoader;
import dev.clipedge.clip.text.ClipTokenizer;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Zero-shot classification of one image against label texts, computed as the SavedModel's serving_default does
 * it: the labels are encoded as given (no prompt template), logits are the export's logit multiplier times the
 * cosine similarities, probabilities their softmax over the labels. The whole on-device pipeline (resize and
 * crop, image encoder, tokenizer, text encoder, ranking) sits behind one call, so clip-jvm's classify command
 * and the Android app run the same code; only the {@link ModelLoader} (LiteRT's C API on the JVM, LiteRT's
 * CompiledModel on Android) differs.
 *
 * <p>Label embeddings are cached (a label set is typically classified against many photos). Not thread-safe: use
 * one instance per thread.
 */
public final class ClipClassifier implements AutoCloseable {
  /** The ranked labels and where the time went, in milliseconds (text: only the labels not in the cache). */
  public record Result(List<ZeroShot.LabelScore> ranking, double preprocessMs, double imageMs, double textMs) {}

  private final ImageEncoder imageEncoder;
  private final TextEncoder textEncoder;
  private final ClipTokenizer tokenizer;
  private final ImagePreprocessor preprocessor;
  private final ZeroShot zeroShot;
  private final TextEmbeddingCache cache;

  private ClipClassifier(ImageEncoder imageEncoder, TextEncoder textEncoder, ClipTokenizer tokenizer,
      double logitMultiplier, int cacheCapacity) {
    this.imageEncoder = imageEncoder;
    this.textEncoder = textEncoder;
    this.tokenizer = tokenizer;
    this.preprocessor = imageEncoder.preprocessor();
    this.zeroShot = new ZeroShot(logitMultiplier);
    this.cache = new TextEmbeddingCache(cacheCapacity);
  }

  /**
   * Opens both encoders of {@code variant} and the tokenizer, every file checked against the manifest first.
   * {@code cacheCapacity}: how many label embeddings to keep.
   */
  public static ClipClassifier open(Manifest manifest, String variant, ModelLoader loader, int cacheCapacity)
      throws IOException {
    double multiplier = manifest.logitMultiplier(); // an old export fails here, before any model is opened
    ImageEncoder image = new ImageEncoder(manifest, variant, loader);
    TextEncoder text = null;
    try {
      text = new TextEncoder(manifest, variant, loader);
      ClipTokenizer tokenizer = ClipTokenizer.fromExport(manifest, text.contextLength());
      return new ClipClassifier(image, text, tokenizer, multiplier, cacheCapacity);
    } catch (IOException | RuntimeException e) {
      image.close();
      if (text != null) {
        text.close();
      }
      throw e;
    }
  }

  /** The side of the square the image encoder takes (what {@link ImagePreprocessor} resizes to). */
  public int resolution() {
    return imageEncoder.resolution();
  }

  /**
   * {@code argb}: the image as Android's Bitmap.getPixels gives it (0xAARRGGBB, row-major), any size within the
   * export's limits; alpha is composited onto white. Returns every label, most probable first.
   */
  public Result classify(int[] argb, int width, int height, List<String> labels) {
    if (labels.isEmpty()) {
      throw new IllegalArgumentException("no labels to rank");
    }
    long start = System.nanoTime();
    byte[] pixels = preprocessor.fromArgb(argb, width, height);
    long preprocessed = System.nanoTime();
    float[] image = imageEncoder.encode(pixels);
    long encoded = System.nanoTime();
    List<float[]> texts = new ArrayList<>(labels.size());
    for (String label : labels) {
      texts.add(cache.get(label, text -> textEncoder.encode(tokenizer.tokenize(text).ids())));
    }
    long end = System.nanoTime();
    return new Result(zeroShot.rank(image, labels, texts, labels.size()), (preprocessed - start) / 1e6,
        (encoded - preprocessed) / 1e6, (end - encoded) / 1e6);
  }

  @Override
  public void close() {
    imageEncoder.close();
    textEncoder.close();
  }
}

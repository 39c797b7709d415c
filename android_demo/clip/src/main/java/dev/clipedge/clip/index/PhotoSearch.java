package dev.clipedge.clip.index;

import dev.clipedge.clip.ImageEncoder;
import dev.clipedge.clip.Manifest;
import dev.clipedge.clip.TextEncoder;
import dev.clipedge.clip.runtime.ModelLoader;
import dev.clipedge.clip.text.ClipTokenizer;
import java.io.IOException;
import java.util.List;

/**
 * Search of a photo index by text or by example image, with the export whose image encoder made the rows (the
 * fingerprint rule of docs/device_index.md): the text encoder of the same variant, run through the shortest
 * length bucket that holds the text ({@link TextEncoder}), or that image encoder. Encoders are opened on first
 * use. Not thread-safe (the encoders reuse their buffers): one instance per thread.
 */
public final class PhotoSearch implements AutoCloseable {
  private final Manifest manifest;
  private final ModelLoader loader;
  private final IndexSearcher searcher;
  private final String variant;
  private TextEncoder textEncoder;
  private ClipTokenizer tokenizer;
  private ImageEncoder imageEncoder;

  private PhotoSearch(Manifest manifest, ModelLoader loader, IndexSearcher searcher, String variant) {
    this.manifest = manifest;
    this.loader = loader;
    this.searcher = searcher;
    this.variant = variant;
  }

  /**
   * Searches {@code index} with {@code manifest}'s encoders of {@code variant} (null: the index's variant), after
   * checking that they are the model that made the rows; a mismatch names both fingerprints.
   */
  public static PhotoSearch open(Manifest manifest, String variant, ModelLoader loader, IndexFile index) {
    checkFingerprint(manifest, variant == null ? index.fingerprint().variant() : variant, index);
    return new PhotoSearch(manifest, loader, new IndexSearcher(index), index.fingerprint().variant());
  }

  /** Throws unless the export's image encoder of {@code variant} made {@code index}'s rows. */
  public static void checkFingerprint(Manifest manifest, String variant, IndexFile index) {
    Fingerprint indexed = index.fingerprint();
    Fingerprint query;
    try {
      query = Fingerprint.of(manifest, variant);
    } catch (Manifest.ExportException e) {
      throw new IndexException(index.file() + " was made by " + indexed + ", but " + e.getMessage());
    }
    if (!query.sameModel(indexed)) {
      throw new IndexException(index.file() + " was made by " + indexed + "; the query model is " + query
          + ": another model, whose embeddings cannot be compared with the index's");
    }
  }

  public IndexFile index() {
    return searcher.index();
  }

  public List<IndexSearcher.Hit> searchText(String text, int k) throws IOException {
    if (textEncoder == null) {
      TextEncoder encoder = new TextEncoder(manifest, variant, loader);
      try {
        tokenizer = ClipTokenizer.fromExport(manifest, encoder.contextLength());
      } catch (IOException | RuntimeException e) {
        encoder.close();
        throw e;
      }
      textEncoder = encoder;
    }
    return search(textEncoder.encode(tokenizer.tokenize(text).ids()), k);
  }

  /** {@code argb}: decoded pixels (0xAARRGGBB, as Bitmap.getPixels gives) of any size. */
  public List<IndexSearcher.Hit> searchImage(int[] argb, int width, int height, int k) {
    if (imageEncoder == null) {
      imageEncoder = new ImageEncoder(manifest, variant, loader);
    }
    byte[] rgb = imageEncoder.preprocessor().fromArgb(argb, width, height);
    return search(imageEncoder.encode(rgb), k);
  }

  /** Searches with an embedding computed elsewhere by the same model (the index's dimension). */
  public List<IndexSearcher.Hit> search(float[] embedding, int k) {
    return searcher.search(embedding, k);
  }

  @Override
  public void close() {
    if (textEncoder != null) {
      textEncoder.close();
    }
    if (imageEncoder != null) {
      imageEncoder.close();
    }
  }
}

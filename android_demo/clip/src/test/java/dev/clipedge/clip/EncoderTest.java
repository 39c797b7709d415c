package dev.clipedge.clip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.clipedge.clip.Manifest.ExportException;
import dev.clipedge.clip.runtime.DType;
import dev.clipedge.clip.runtime.TensorInfo;
import dev.clipedge.clip.runtime.TfliteModel;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The encoders' tensor plumbing with a scripted model in place of LiteRT (real runs: test_jvm_runtime.py). */
class EncoderTest {
  @TempDir Path folder;

  /**
   * Reports the given signatures (key -> {input, output}, the first is the file's first), records the signature
   * and input it is run with, writes {@code output} into the output.
   */
  private static final class ScriptedModel implements TfliteModel {
    final Map<String, List<TensorInfo>> signatures;
    final Consumer<ByteBuffer> output;
    String lastKey;
    byte[] lastInput;
    boolean closed;

    ScriptedModel(TensorInfo input, TensorInfo output, Consumer<ByteBuffer> write) {
      this(Map.of("serving_default", List.of(input, output)), write);
    }

    ScriptedModel(Map<String, List<TensorInfo>> signatures, Consumer<ByteBuffer> write) {
      this.signatures = signatures;
      this.output = write;
    }

    @Override
    public List<String> signatureKeys() {
      return List.copyOf(signatures.keySet());
    }

    @Override
    public List<TensorInfo> inputs(String key) {
      return List.of(signatures.get(key).get(0));
    }

    @Override
    public List<TensorInfo> outputs(String key) {
      return List.of(signatures.get(key).get(1));
    }

    @Override
    public void run(String key, ByteBuffer[] in, ByteBuffer[] out) {
      lastKey = key;
      lastInput = new byte[in[0].capacity()];
      in[0].get(0, lastInput);
      output.accept(out[0]);
    }

    @Override
    public void close() {
      closed = true;
    }
  }

  @Test
  void int8OutputIsDequantisedAndNormalised() throws IOException {
    Manifest manifest = Manifest.load(ExportFixture.writeDefault(folder.resolve("e")));
    ScriptedModel model = new ScriptedModel(new TensorInfo("pixels", DType.INT8, new int[] {1, 4, 4, 3}),
        new TensorInfo("embedding", DType.INT8, new int[] {1, 2}), out -> out.put(0, (byte) 2).put(1, (byte) 3));
    try (ImageEncoder encoder = new ImageEncoder(manifest, "int8", file -> model)) {
      assertEquals(4, encoder.resolution());
      assertEquals(2, encoder.embeddingSize());
      byte[] rgb = new byte[4 * 4 * 3];
      rgb[0] = 0;
      rgb[1] = (byte) 255;
      rgb[2] = 100;
      // scale 0.5, zero point -1: 0.5 * (2 + 1) = 1.5 and 0.5 * (3 + 1) = 2.0, norm 2.5
      assertArrayEquals(new float[] {0.6f, 0.8f}, encoder.encode(rgb), 1e-7f);
      // input scale 1, zero point -128: pixel p becomes p - 128
      assertEquals(-128, model.lastInput[0]);
      assertEquals(127, model.lastInput[1]);
      assertEquals(-28, model.lastInput[2]);
    }
    assertTrue(model.closed);
  }

  @Test
  void floatTextOutputIsRenormalised() throws IOException {
    Manifest manifest = Manifest.load(ExportFixture.writeDefault(folder.resolve("e")));
    ScriptedModel model = new ScriptedModel(new TensorInfo("token_ids", DType.INT32, new int[] {1, 5}),
        new TensorInfo("embedding", DType.FLOAT32, new int[] {1, 2}),
        out -> out.putFloat(0, -3f).putFloat(4, 4f));
    try (TextEncoder encoder = new TextEncoder(manifest, "float32", file -> model)) {
      assertEquals(5, encoder.contextLength());
      assertArrayEquals(new float[] {-0.6f, 0.8f}, encoder.encode(new int[] {98, 7, 99, 0, 0}), 1e-7f);
      ByteBuffer ids = ByteBuffer.wrap(model.lastInput).order(java.nio.ByteOrder.nativeOrder());
      assertEquals(98, ids.getInt(0));
      assertEquals(99, ids.getInt(8));
      IllegalArgumentException outside = assertThrows(IllegalArgumentException.class,
          () -> encoder.encode(new int[] {100, 0, 0, 0, 0}));
      assertTrue(outside.getMessage().contains("vocabulary of 100"), outside.getMessage());
      assertThrows(IllegalArgumentException.class, () -> encoder.encode(new int[] {1, 2}));
    }
  }

  @Test
  void modelThatDisagreesWithTheManifestIsRefused() throws IOException {
    Manifest manifest = Manifest.load(ExportFixture.writeDefault(folder.resolve("e")));
    ScriptedModel model = new ScriptedModel(new TensorInfo("pixels", DType.UINT8, new int[] {1, 8, 8, 3}),
        new TensorInfo("embedding", DType.FLOAT32, new int[] {1, 2}), out -> { });
    ExportException error = assertThrows(ExportException.class,
        () -> new ImageEncoder(manifest, "float32", file -> model));
    assertTrue(error.getMessage().contains("[1, 8, 8, 3]") && error.getMessage().contains("[1, 4, 4, 3]"),
        error.getMessage());
    assertTrue(model.closed);
  }

  /** The fixture's dynamic_int8 text encoder: full length 5 (serving_default) and a bucket of 3 (tokens_3). */
  private static ScriptedModel bucketedModel(String firstKey) {
    TensorInfo embedding = new TensorInfo("embedding", DType.FLOAT32, new int[] {1, 2});
    Map<String, List<TensorInfo>> signatures = new LinkedHashMap<>();
    List<TensorInfo> full = List.of(new TensorInfo("token_ids", DType.INT32, new int[] {1, 5}), embedding);
    List<TensorInfo> bucket = List.of(new TensorInfo("token_ids", DType.INT32, new int[] {1, 3}), embedding);
    // Android's runtime lists signatures in manifest order, not the file's: the full length need not be first.
    signatures.put(firstKey, firstKey.equals("tokens_3") ? bucket : full);
    signatures.put(firstKey.equals("tokens_3") ? "serving_default" : "tokens_3",
        firstKey.equals("tokens_3") ? full : bucket);
    return new ScriptedModel(signatures, out -> out.putFloat(0, 3f).putFloat(4, 4f));
  }

  @Test
  void textRunsTheShortestBucketHoldingTheEndToken() throws IOException {
    Manifest manifest = Manifest.load(ExportFixture.writeDefault(folder.resolve("e")));
    for (String firstKey : List.of("serving_default", "tokens_3")) {
      ScriptedModel model = bucketedModel(firstKey);
      try (TextEncoder encoder = new TextEncoder(manifest, "dynamic_int8", file -> model)) {
        assertEquals(5, encoder.contextLength());
        assertEquals(List.of(3, 5), encoder.lengths());
        // end token (the largest id, 99) at position 2: fills the bucket exactly
        assertArrayEquals(new float[] {0.6f, 0.8f}, encoder.encode(new int[] {98, 7, 99, 0, 0}), 1e-7f);
        assertEquals("tokens_3", model.lastKey);
        assertEquals(12, model.lastInput.length);
        ByteBuffer ids = ByteBuffer.wrap(model.lastInput).order(java.nio.ByteOrder.nativeOrder());
        assertEquals(98, ids.getInt(0));
        assertEquals(99, ids.getInt(8));
        // one token too long for the bucket
        encoder.encode(new int[] {98, 7, 8, 99, 0});
        assertEquals("serving_default", model.lastKey);
        assertEquals(20, model.lastInput.length);
        // the first largest id decides, not a later one (the graph reads the embedding at argmax)
        assertEquals(3, encoder.lengthFor(new int[] {98, 99, 7, 99, 0}));
        assertEquals(5, encoder.lengthFor(new int[] {98, 7, 8, 9, 99}));
      }
    }
  }

  @Test
  void bucketTheModelLacksIsRefused() throws IOException {
    Manifest manifest = Manifest.load(ExportFixture.writeDefault(folder.resolve("e")));
    ScriptedModel model = new ScriptedModel(new TensorInfo("token_ids", DType.INT32, new int[] {1, 5}),
        new TensorInfo("embedding", DType.FLOAT32, new int[] {1, 2}), out -> { });
    ExportException error = assertThrows(ExportException.class,
        () -> new TextEncoder(manifest, "dynamic_int8", file -> model));
    assertTrue(error.getMessage().contains("no signature 'tokens_3'"), error.getMessage());
    assertTrue(model.closed);
  }
}

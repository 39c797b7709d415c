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
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The encoders' tensor plumbing with a scripted model in place of LiteRT (real runs: test_jvm_runtime.py). */
class EncoderTest {
  @TempDir Path folder;

  /** Reports the given tensors, records the input it is run with, writes {@code output} into the output. */
  private static final class ScriptedModel implements TfliteModel {
    final List<TensorInfo> inputs;
    final List<TensorInfo> outputs;
    final Consumer<ByteBuffer> output;
    byte[] lastInput;
    boolean closed;

    ScriptedModel(TensorInfo input, TensorInfo output, Consumer<ByteBuffer> write) {
      this.inputs = List.of(input);
      this.outputs = List.of(output);
      this.output = write;
    }

    @Override
    public List<TensorInfo> inputs() {
      return inputs;
    }

    @Override
    public List<TensorInfo> outputs() {
      return outputs;
    }

    @Override
    public void run(ByteBuffer[] in, ByteBuffer[] out) {
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
}

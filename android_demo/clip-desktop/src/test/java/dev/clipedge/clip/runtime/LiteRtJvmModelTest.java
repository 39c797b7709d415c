package dev.clipedge.clip.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The JNI runner on real .tflite files. Needs the JNI library and an export, named by system properties
 * ({@code mvn test -Dclipedge.litert.jni=... -Dclipedge.test.export=DIR}); without them these tests are skipped,
 * and tests/test_jvm_runtime.py checks the numbers against the SavedModel through clip-jvm.
 */
class LiteRtJvmModelTest {
  @Test
  void describesRunsAndClosesTwice() {
    Path export = LiteRtFixture.export();
    try (LiteRtJvmModel model = LiteRtJvmModel.open(export.resolve("tflite/text_encoder_float32.tflite"),
        LiteRtJvmModel.Options.cpu(2))) {
      assertEquals(1, model.inputs().size());
      TensorInfo ids = model.inputs().get(0);
      assertEquals(DType.INT32, ids.dtype());
      assertEquals(2, ids.shape().length);
      TensorInfo embedding = model.outputs().get(0);
      assertEquals(DType.FLOAT32, embedding.dtype());
      ByteBuffer input = TfliteModel.allocate(ids);
      input.putInt(0, 49406);
      input.putInt(4, 49407);
      ByteBuffer first = model.run(input)[0];
      ByteBuffer second = model.run(input)[0];
      float[] a = new float[embedding.shape()[1]];
      float[] b = new float[a.length];
      double norm = 0;
      for (int i = 0; i < a.length; i++) {
        a[i] = first.getFloat(4 * i);
        b[i] = second.getFloat(4 * i);
        norm += a[i] * a[i];
      }
      assertArrayEquals(a, b); // buffers are reused between runs; results must not leak from one to the next
      assertEquals(1.0, norm, 1e-5); // the contract: the text encoder's output is L2-normalised
      model.close();
      model.close();
      assertThrows(IllegalStateException.class, () -> model.run(input));
    }
  }

  /** The token-id buffer of signature {@code key}: start, {@code words} ids, end at the last position. */
  private static ByteBuffer ids(LiteRtJvmModel model, String key) {
    TensorInfo ids = model.inputs(key).get(0);
    ByteBuffer input = TfliteModel.allocate(ids);
    int length = ids.shape()[1];
    input.putInt(0, 49406);
    for (int i = 1; i < length - 1; i++) {
      input.putInt(4 * i, 320 + 7 * i);
    }
    input.putInt(4 * (length - 1), 49407);
    return input;
  }

  @Test
  void lengthBucketSignatureEqualsTheFullLength() {
    Path export = LiteRtFixture.export();
    try (LiteRtJvmModel model = LiteRtJvmModel.open(export.resolve("tflite/text_encoder_float32.tflite"),
        LiteRtJvmModel.Options.cpu(1))) {
      List<String> keys = model.signatureKeys();
      assertEquals("serving_default", keys.get(0), "the full length is the file's first signature: " + keys);
      assertTrue(keys.size() > 1, "the export has length buckets: " + keys);
      int full = model.inputs().get(0).shape()[1];
      for (String key : keys.subList(1, keys.size())) {
        ByteBuffer shortIds = ids(model, key);
        int length = shortIds.capacity() / 4;
        assertTrue(length < full, key + " takes " + length + " ids");
        // The same text padded to the full length: the end token fills the bucket's last position.
        ByteBuffer fullIds = TfliteModel.allocate(model.inputs().get(0));
        for (int i = 0; i < length; i++) {
          fullIds.putInt(4 * i, shortIds.getInt(4 * i));
        }
        ByteBuffer[] bucket = {TfliteModel.allocate(model.outputs(key).get(0))};
        model.run(key, new ByteBuffer[] {shortIds}, bucket);
        ByteBuffer reference = model.run(fullIds)[0];
        for (int i = 0; i < model.outputs().get(0).shape()[1]; i++) {
          assertEquals(reference.getFloat(4 * i), bucket[0].getFloat(4 * i), 1e-6, key + " output " + i);
        }
      }
      IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
          () -> model.inputs("tokens_1000"));
      assertTrue(unknown.getMessage().contains("no signature 'tokens_1000'"), unknown.getMessage());
    }
  }

  @Test
  void cpuThreadsReachTheRuntime() throws IOException {
    Path export = LiteRtFixture.export();
    // clip-jvm's --threads N: XNNPACK's pool runs N - 1 threads of its own beside the caller. Counted, not
    // timed: one thread starts none, four start three, and 0 (LiteRT's default) is one thread.
    assertEquals(0, LiteRtFixture.threadsStarted(file -> LiteRtJvmModel.open(file, LiteRtJvmModel.Options.cpu(1))));
    assertEquals(3, LiteRtFixture.threadsStarted(file -> LiteRtJvmModel.open(file, LiteRtJvmModel.Options.cpu(4))));
    assertEquals(0, LiteRtFixture.threadsStarted(file -> LiteRtJvmModel.open(file, LiteRtJvmModel.Options.cpu(0))));
  }

  @Test
  void unavailableAcceleratorsFallBackToTheCpu() {
    // clip-jvm --accelerator gpu|npu asks for that accelerator, then the CPU. This machine has neither, and
    // the documented behaviour is that LiteRT runs on the CPU what they cannot take: the same numbers.
    Path export = LiteRtFixture.export();
    Path file = export.resolve("tflite/text_encoder_float32.tflite");
    float[] reference;
    try (LiteRtJvmModel cpu = LiteRtJvmModel.open(file, LiteRtJvmModel.Options.cpu(1))) {
      reference = floats(cpu.run(ids(cpu, "serving_default"))[0]);
    }
    for (LiteRtJvmModel.Accelerator accelerator : List.of(LiteRtJvmModel.Accelerator.GPU,
        LiteRtJvmModel.Accelerator.NPU)) {
      try (LiteRtJvmModel model = LiteRtJvmModel.open(file, new LiteRtJvmModel.Options(
          List.of(accelerator, LiteRtJvmModel.Accelerator.CPU), 1, false))) {
        assertArrayEquals(reference, floats(model.run(ids(model, "serving_default"))[0]), 1e-6f,
            accelerator.toString());
      }
    }
  }

  private static float[] floats(ByteBuffer buffer) {
    float[] values = new float[buffer.capacity() / 4];
    for (int i = 0; i < values.length; i++) {
      values[i] = buffer.getFloat(4 * i);
    }
    return values;
  }

  @Test
  void refusesBuffersOfTheWrongSize() {
    Path export = LiteRtFixture.export();
    try (LiteRtJvmModel model = LiteRtJvmModel.open(export.resolve("tflite/image_encoder_float32.tflite"))) {
      TensorInfo pixels = model.inputs().get(0);
      ByteBuffer small = ByteBuffer.allocateDirect((int) pixels.byteSize() - 1);
      IllegalArgumentException error = assertThrows(IllegalArgumentException.class, () -> model.run(small));
      assertTrue(error.getMessage().contains(pixels.byteSize() + " bytes"), error.getMessage());
      ByteBuffer heap = ByteBuffer.allocate((int) pixels.byteSize());
      assertThrows(IllegalArgumentException.class, () -> model.run(heap));
    }
  }

  @Test
  void notAModelIsALiteRtErrorNamingTheCall(@TempDir Path folder) throws IOException {
    LiteRtFixture.export();
    Path garbage = folder.resolve("garbage.tflite");
    Files.writeString(garbage, "this is not a flatbuffer");
    LiteRtException error = assertThrows(LiteRtException.class, () -> LiteRtJvmModel.open(garbage));
    assertTrue(error.getMessage().startsWith("LiteRtCreateModelFromFile (" + garbage.toAbsolutePath()),
        error.getMessage());
    assertTrue(error.getMessage().contains("kLiteRtStatus"), error.getMessage());
  }

  @Test
  void missingFileIsNamed(@TempDir Path folder) {
    Path missing = folder.resolve("missing.tflite");
    IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
        () -> LiteRtJvmModel.open(missing));
    assertTrue(error.getMessage().contains(missing.toString()), error.getMessage());
    // A folder is no model either; both are refused before the JNI library is needed (this runs without it).
    assertEquals(folder + ": no such readable model file",
        assertThrows(IllegalArgumentException.class, () -> LiteRtJvmModel.open(folder)).getMessage());
  }

  @Test
  void optionsRefuseANegativeThreadCountAndNoAccelerator() {
    // 0 is LiteRT's own default; the upper bound is clip-jvm's --threads (ExportFlagsTest).
    assertEquals("cpu threads must be >= 0, got -1", assertThrows(IllegalArgumentException.class,
        () -> LiteRtJvmModel.Options.cpu(-1)).getMessage());
    assertEquals(0, LiteRtJvmModel.Options.cpu(0).cpuThreads());
    assertEquals("no accelerator given", assertThrows(IllegalArgumentException.class,
        () -> new LiteRtJvmModel.Options(List.of(), 1, false)).getMessage());
    // The choice is kept as given (the first accelerator first), and not as the caller's list later becomes.
    List<LiteRtJvmModel.Accelerator> asked = new ArrayList<>(List.of(LiteRtJvmModel.Accelerator.NPU,
        LiteRtJvmModel.Accelerator.CPU));
    LiteRtJvmModel.Options options = new LiteRtJvmModel.Options(asked, 2, false);
    asked.clear();
    assertEquals(List.of(LiteRtJvmModel.Accelerator.NPU, LiteRtJvmModel.Accelerator.CPU), options.accelerators());
    assertEquals(List.of(LiteRtJvmModel.Accelerator.CPU), LiteRtJvmModel.Options.cpu(3).accelerators());
  }

  @Test
  void unsetLibraryPropertyIsExplained(@TempDir Path folder) throws IOException {
    assumeTrue(System.getProperty(LiteRtJvmModel.LIBRARY_PROPERTY) == null, "library property is set");
    Path file = Files.writeString(folder.resolve("model.tflite"), "x");
    IllegalStateException error = assertThrows(IllegalStateException.class, () -> LiteRtJvmModel.open(file));
    assertTrue(error.getMessage().contains(LiteRtJvmModel.LIBRARY_PROPERTY), error.getMessage());
  }
}

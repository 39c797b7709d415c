package dev.clipedge.clip.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The signature lookup and buffer checks both LiteRT runners inherit, on a model that records what reaches its
 * runtime: a bad key or buffer must be refused before the runtime sees it (LiteRT's C API would read past a short
 * buffer; its Android API would only log).
 */
class AbstractTfliteModelTest {
  private static final TensorInfo IDS = new TensorInfo("ids", DType.INT32, new int[] {1, 4});
  private static final TensorInfo SHORT_IDS = new TensorInfo("ids", DType.INT32, new int[] {1, 2});
  private static final TensorInfo EMBEDDING = new TensorInfo("embedding", DType.FLOAT32, new int[] {1, 3});

  /** Two signatures in the file's order; each run is recorded with the runner handle it reached. */
  private static final class RecordingModel extends AbstractTfliteModel<String> {
    final List<String> runs = new ArrayList<>();

    RecordingModel() {
      super("model.tflite");
      addSignature("serving_default", List.of(IDS), List.of(EMBEDDING), "handle 0");
      addSignature("tokens_2", List.of(SHORT_IDS), List.of(EMBEDDING), "handle 1");
    }

    @Override
    protected void runChecked(Signature<String> signature, ByteBuffer[] inputs, ByteBuffer[] outputs) {
      runs.add(signature.key() + " on " + signature.runner());
      outputs[0].putFloat(0, inputs[0].getInt(0));
    }

    @Override
    public void close() {}
  }

  private static ByteBuffer[] buffers(TensorInfo tensor) {
    return new ByteBuffer[] {TfliteModel.allocate(tensor)};
  }

  private static String refusal(RecordingModel model, ByteBuffer[] inputs, ByteBuffer[] outputs) {
    String message = assertThrows(IllegalArgumentException.class,
        () -> model.run("serving_default", inputs, outputs)).getMessage();
    assertEquals(List.of(), model.runs, "a refused call must not reach the runtime");
    return message;
  }

  @Test
  void signaturesAreListedAndLookedUpByKey() {
    RecordingModel model = new RecordingModel();
    assertEquals(List.of("serving_default", "tokens_2"), model.signatureKeys());
    assertEquals(List.of(SHORT_IDS), model.inputs("tokens_2"));
    assertEquals(List.of(IDS), model.inputs(), "no key: the file's first signature");
    assertEquals(List.of(EMBEDDING), model.outputs("tokens_2"));
    String expected = "model.tflite has no signature 'tokens_3'; it has [serving_default, tokens_2]";
    assertEquals(expected, assertThrows(IllegalArgumentException.class, () -> model.inputs("tokens_3")).getMessage());
    assertEquals(expected, assertThrows(IllegalArgumentException.class, () -> model.outputs("tokens_3")).getMessage());
    assertEquals(expected, assertThrows(IllegalArgumentException.class,
        () -> model.run("tokens_3", buffers(SHORT_IDS), buffers(EMBEDDING))).getMessage());
  }

  @Test
  void eachKeyReachesItsOwnSignature() {
    RecordingModel model = new RecordingModel();
    ByteBuffer[] ids = buffers(SHORT_IDS);
    ids[0].putInt(0, 7);
    ByteBuffer[] out = buffers(EMBEDDING);
    model.run("tokens_2", ids, out);
    ByteBuffer full = TfliteModel.allocate(IDS);
    full.putInt(0, 9);
    ByteBuffer embedding = model.run(full)[0];
    assertEquals(List.of("tokens_2 on handle 1", "serving_default on handle 0"), model.runs);
    assertEquals(7f, out[0].getFloat(0));
    assertEquals(9f, embedding.getFloat(0));
    assertEquals(EMBEDDING.byteSize(), embedding.capacity());
  }

  @Test
  void aKeyIsListedOnce() {
    IllegalStateException error = assertThrows(IllegalStateException.class, () -> new AbstractTfliteModel<String>(
        "twice.tflite") {
      {
        addSignature("serving_default", List.of(IDS), List.of(EMBEDDING), "a");
        addSignature("serving_default", List.of(IDS), List.of(EMBEDDING), "b");
      }

      @Override
      protected void runChecked(Signature<String> signature, ByteBuffer[] inputs, ByteBuffer[] outputs) {}

      @Override
      public void close() {}
    });
    assertEquals("twice.tflite has signature 'serving_default' twice", error.getMessage());
  }

  @Test
  void buffersOfTheWrongNumberSizeOrKindAreRefused() {
    RecordingModel model = new RecordingModel();
    ByteBuffer[] out = buffers(EMBEDDING);
    assertEquals("model.tflite takes 1 input buffers, got 0", refusal(model, new ByteBuffer[0], out));
    assertEquals("model.tflite takes 1 output buffers, got 2", refusal(model, buffers(IDS),
        new ByteBuffer[] {out[0], out[0]}));
    String ids = "input ids int32 [1, 4] needs a direct ByteBuffer of 16 bytes";
    // The short bucket's buffer given to the full length: 8 bytes where 16 are read.
    assertEquals(ids, refusal(model, buffers(SHORT_IDS), out));
    assertEquals(ids, refusal(model, new ByteBuffer[] {ByteBuffer.allocateDirect(17)}, out));
    assertEquals(ids, refusal(model, new ByteBuffer[] {ByteBuffer.allocate(16)}, out), "a heap buffer");
    assertEquals(ids, refusal(model, new ByteBuffer[] {null}, out));
    assertEquals("output embedding float32 [1, 3] needs a direct ByteBuffer of 12 bytes",
        refusal(model, buffers(IDS), new ByteBuffer[] {ByteBuffer.allocateDirect(8)}));
    assertEquals("output embedding float32 [1, 3] buffer is read-only",
        refusal(model, buffers(IDS), new ByteBuffer[] {out[0].asReadOnlyBuffer()}));
    // Inputs are only read: a read-only view of the right size runs.
    model.run("serving_default", new ByteBuffer[] {buffers(IDS)[0].asReadOnlyBuffer()}, out);
    assertEquals(List.of("serving_default on handle 0"), model.runs);
  }

  @Test
  void signatureListsCannotBeChangedByTheRunner() {
    List<TensorInfo> inputs = new ArrayList<>(List.of(IDS));
    AbstractTfliteModel<Integer> model = new AbstractTfliteModel<>("copy.tflite") {
      {
        addSignature("serving_default", inputs, List.of(EMBEDDING), 0);
      }

      @Override
      protected void runChecked(Signature<Integer> signature, ByteBuffer[] in, ByteBuffer[] out) {}

      @Override
      public void close() {}
    };
    inputs.add(SHORT_IDS);
    assertEquals(List.of(IDS), model.inputs("serving_default"));
    assertThrows(UnsupportedOperationException.class, () -> model.inputs().add(SHORT_IDS));
    assertTrue(model.toString().contains("copy.tflite"), model.toString());
  }
}

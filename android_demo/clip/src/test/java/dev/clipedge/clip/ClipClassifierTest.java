package dev.clipedge.clip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.clipedge.clip.runtime.DType;
import dev.clipedge.clip.runtime.ModelLoader;
import dev.clipedge.clip.runtime.TensorInfo;
import dev.clipedge.clip.runtime.TfliteModel;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole on-device classification behind one call, with models that only describe their tensors. Its numbers
 * on a real export are checked on the desktop runtime (clip-desktop's ClipClassifierOnLiteRtTest).
 */
class ClipClassifierTest {
  @TempDir Path folder;

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

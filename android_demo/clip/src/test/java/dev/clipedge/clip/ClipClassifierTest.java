package dev.clipedge.clip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.clipedge.clip.runtime.ModelLoader;
import java.io.IOException;
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

  @Test
  void aFailedOpenClosesWhatItOpened() throws IOException {
    // The fixture lists no merges.txt: opening the tokenizer fails after both encoders are open, and an app that
    // retries must not leak their native memory each time.
    Manifest manifest = Manifest.load(ExportFixture.writeDefault(folder.resolve("e")));
    List<ExportFixture.DescribedModel> opened = new ArrayList<>();
    ModelLoader loader = file -> {
      ExportFixture.DescribedModel model = new ExportFixture.DescribedModel(file);
      opened.add(model);
      return model;
    };
    assertThrows(Manifest.ExportException.class, () -> ClipClassifier.open(manifest, "float32", loader, 4));
    assertEquals(2, opened.size());
    assertTrue(opened.get(0).closed && opened.get(1).closed);
  }
}

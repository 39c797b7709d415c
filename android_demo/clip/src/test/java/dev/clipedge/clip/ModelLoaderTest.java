package dev.clipedge.clip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.clipedge.clip.Manifest.ExportException;
import dev.clipedge.clip.runtime.ModelLoader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * runtime.ModelLoader as the core calls it: a loader opens only files the manifest vouches for (size and sha256
 * checked first, so a runtime never parses a missing, truncated or replaced file), gets the artifact of the tower
 * and variant asked for, and its own failure reaches the caller unchanged, with what was opened before it closed.
 * The runtimes' own refusals (a file that is not a model, thread counts, accelerators) are clip-desktop's
 * LiteRtJvmModelTest and ExportFlagsTest.
 */
class ModelLoaderTest {
  @TempDir Path folder;
  private Path export;
  private Manifest manifest;
  /** Every file the loader was asked to open, and the models it returned. */
  private final List<Path> opened = new ArrayList<>();
  private final List<ExportFixture.DescribedModel> models = new ArrayList<>();

  private final ModelLoader loader = file -> {
    opened.add(file);
    ExportFixture.DescribedModel model = new ExportFixture.DescribedModel(file);
    models.add(model);
    return model;
  };

  @BeforeEach
  void writeExport() throws IOException {
    export = ExportFixture.writeDefault(folder.resolve("export"));
    manifest = Manifest.load(export);
  }

  /** The ExportException of opening the float32 image encoder after {@code file} was changed; nothing opened. */
  private String refusal(Path file) {
    String message = assertThrows(ExportException.class,
        () -> new ImageEncoder(manifest, "float32", loader)).getMessage();
    assertEquals(List.of(), opened, "the loader must not be given a file the manifest does not vouch for");
    assertTrue(message.startsWith(file.toString()), message);
    return message;
  }

  @Test
  void aMissingFileNeverReachesTheLoader() throws IOException {
    Path file = export.resolve("tflite/image_encoder_float32.tflite");
    Files.delete(file);
    assertTrue(refusal(file).endsWith(": missing (listed in the export's manifest.json)"));
  }

  @Test
  void aTruncatedFileNeverReachesTheLoader() throws IOException {
    Path file = Files.writeString(export.resolve("tflite/image_encoder_float32.tflite"), "ab");
    assertTrue(refusal(file).contains("size 2 bytes does not match the manifest's 3"));
  }

  @Test
  void aReplacedFileOfTheSameSizeNeverReachesTheLoader() throws IOException {
    Path file = Files.writeString(export.resolve("tflite/image_encoder_float32.tflite"), "abd");
    assertTrue(refusal(file).contains("does not match the manifest's " + ExportFixture.ABC_SHA256));
  }

  @Test
  void theLoaderGetsTheArtifactOfTheTowerAndVariantAskedFor() {
    try (ImageEncoder int8 = new ImageEncoder(manifest, "int8", loader);
         TextEncoder text = new TextEncoder(manifest, "float32", loader)) {
      assertEquals(List.of(export.resolve("tflite/image_encoder_int8.tflite"),
          export.resolve("tflite/text_encoder_float32.tflite")), opened);
    }
    assertTrue(models.get(0).closed && models.get(1).closed, "closing an encoder closes its model");
  }

  @Test
  void aLoaderFailureReachesTheCallerAndClosesWhatWasOpened() {
    IllegalStateException failure = new IllegalStateException("LiteRT cannot open text_encoder_float32.tflite");
    ModelLoader textFails = file -> {
      if (file.getFileName().toString().startsWith("text")) {
        throw failure;
      }
      return loader.open(file);
    };
    assertSame(failure, assertThrows(IllegalStateException.class,
        () -> ClipClassifier.open(manifest, "float32", textFails, 4)));
    assertEquals(List.of(export.resolve("tflite/image_encoder_float32.tflite")), opened);
    assertTrue(models.get(0).closed, "the image encoder opened before the failure is closed");
  }
}
